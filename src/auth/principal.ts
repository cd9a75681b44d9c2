/** Who is calling, as established by a verified token. */
export interface Principal {
  readonly subject: string;
  readonly scopes: ReadonlySet<string>;
  /** Diagnosis ids the bearer may read (the `diagnoses` claim). */
  readonly diagnoses: ReadonlySet<string>;
  /** Token expiry in epoch milliseconds. */
  readonly expiresAt: number;
  /** `iat` in epoch milliseconds; 0 when the token has none. */
  readonly issuedAt: number;
  /** `jti`, when the token has one. */
  readonly tokenId: string | null;
}

/** The result of authenticating one request or connection. */
export type AuthState = { readonly principal: Principal } | { readonly principal: null; readonly failure: AuthFailureReason };

/** `revoked`: the token verified, but a revocation covers it (see auth/live-access.ts). */
export type AuthFailureReason = 'missing' | 'invalid' | 'expired' | 'revoked';
