// Port: how much model spend a channel or a user has today (adapter: src/adapters/redis/usage.ts).
// Read by the Slack side before accepting work; written by the runner's model gateway.
export interface BudgetReader {
  channelSpentToday(channelId: string): Promise<number>;
  userSpentToday(userId: string): Promise<number>;
}
