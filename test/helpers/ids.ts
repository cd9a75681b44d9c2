let counter = 0;

/** A diagnosis id (or token subject) that no other test, in this process or another, uses. */
export const uid = (name: string): string => `${name}-${process.pid}-${++counter}`;
