// Port: where the git bundles that agents upload wait for the publisher (adapter: Redis, shared by replicas).
export interface BundleStore {
  put(runId: string, data: Buffer): Promise<void>;
  get(runId: string): Promise<Buffer | undefined>;
  delete(runId: string): Promise<void>;
}
