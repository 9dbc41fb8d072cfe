/** Why an attempt of the symbolic executor ended without a solution (one line, never a claim). */
export class Unsolved extends Error {}
