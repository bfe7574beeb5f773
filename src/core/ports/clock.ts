// Port: time and randomness, injected so that core and services stay deterministic under test.
export interface Clock {
  now(): Date;
}

export interface Random {
  bytes(n: number): Uint8Array;
}
