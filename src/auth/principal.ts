/** Who is calling, as established by a verified token. */
export interface Principal {
  readonly subject: string;
  readonly scopes: ReadonlySet<string>;
  /** Diagnosis ids the bearer may read (the `diagnoses` claim). */
  readonly diagnoses: ReadonlySet<string>;
  /** Token expiry in epoch milliseconds. */
  readonly expiresAt: number;
}

/** The result of authenticating one request or connection. */
export type AuthState = { readonly principal: Principal } | { readonly principal: null; readonly failure: AuthFailureReason };

export type AuthFailureReason = 'missing' | 'invalid' | 'expired';
