/** What the downstream tasks hand the evaluator: candidate texts and which one is right. */

export interface TaskItem {
  /** Stable id naming the task, the source document and the sentence: `agreement:builtin:brown/ca01:12`. */
  readonly id: string;
  /**
   * Full texts. The evaluator scores each by its total log-likelihood (the sum over its tokens,
   * not the mean, as in BLiMP) and the item counts as correct when the highest is `answer`.
   */
  readonly candidates: readonly string[];
  /** Index of the correct candidate; spread over positions so a positional bias cannot score. */
  readonly answer: number;
}

export interface Task {
  readonly name: string;
  readonly description: string;
  /** Accuracy of picking a candidate uniformly at random. */
  readonly chance: number;
  readonly items: readonly TaskItem[];
}
