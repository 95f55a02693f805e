/**
 * Whether this gateway is draining (SIGTERM): /ready answers 503 and every transport refuses new
 * streams from then on. Owned by the app; the routes of both APIs and the seed hub read it.
 */
export class DrainState {
  private draining = false;

  get active(): boolean {
    return this.draining;
  }

  start(): void {
    this.draining = true;
  }
}
