/**
 * A write was refused because another row already holds a value that must be unique.
 *
 * Callers catch this to answer "409 Conflict"; every other store error is unexpected.
 *
 * @example
 * ```ts
 * try {
 *   await store.createAgent(agent, now);
 * } catch (e) {
 *   if (e instanceof StoreConflictError && e.field === "publicKey") return conflict();
 *   throw e;
 * }
 * ```
 */
export class StoreConflictError extends Error {
  /** The record field (camelCase, as in the store's types) whose value is taken. */
  readonly field: string;

  constructor(field: string, options?: ErrorOptions) {
    super(`Cannot write: another row already has this ${field}`, options);
    this.name = "StoreConflictError";
    this.field = field;
  }
}

/**
 * A write referred to a row that does not exist (e.g. `createKey` for an unknown user).
 * Nothing was written. Callers answer "404 Not Found".
 */
export class StoreNotFoundError extends Error {
  /** What kind of row is missing: `"user"`, `"key"`, … */
  readonly entity: string;
  /** The id that matched nothing. */
  readonly id: string;

  constructor(entity: string, id: string, options?: ErrorOptions) {
    super(`Cannot write: no ${entity} ${id}`, options);
    this.name = "StoreNotFoundError";
    this.entity = entity;
    this.id = id;
  }
}

/**
 * A hold or a charge was refused because the user's available balance (the balance minus
 * what is already held) cannot cover it. Nothing was written. Callers answer "402 Payment
 * Required".
 */
export class InsufficientFundsError extends Error {
  /** The user whose balance is short. */
  readonly userId: string;
  /** The amount that was refused, in canonical `formatUsd` form. */
  readonly amount: string;

  constructor(userId: string, amount: string, options?: ErrorOptions) {
    super(`Cannot take ${amount} USD from ${userId}: the available balance is lower`, options);
    this.name = "InsufficientFundsError";
    this.userId = userId;
    this.amount = amount;
  }
}

/**
 * A hold was refused because it would take a key's spend past one of its caps (see
 * `KeyCaps`). An `InsufficientFundsError`, so callers that only know that one still refuse the
 * request; the gateway names the cap. Nothing was written.
 */
export class KeyCapExceededError extends InsufficientFundsError {
  /** Which cap: `"budget"` (lifetime), `"dailyCap"` or `"monthlyCap"` (UTC periods). */
  readonly cap: "budget" | "dailyCap" | "monthlyCap";
  readonly keyId: string;
  /** The cap, what the key has spent in its period (settled + held), canonical USD text. */
  readonly limit: string;
  readonly spent: string;

  constructor(
    refused: { userId: string; keyId: string; amount: string },
    cap: KeyCapExceededError["cap"],
    limit: string,
    spent: string,
  ) {
    super(refused.userId, refused.amount);
    this.message = `Cannot hold ${refused.amount} USD for key ${refused.keyId}: its ${cap} ` +
      `of ${limit} USD has ${spent} USD spent`;
    this.name = "KeyCapExceededError";
    this.cap = cap;
    this.keyId = refused.keyId;
    this.limit = limit;
    this.spent = spent;
  }
}
