/**
 * Registers the dashboard on a built server: the app's static files and its live feed
 * (`GET /v1/dashboard/events`, behind the API key like every API route). The page itself is
 * answered at `/` by the server (ServerOptions.webApp).
 */
import type { FastifyInstance } from 'fastify';
import { ApiError, routeNotFound } from '../server/errors.js';
import type { DashboardAssets } from './assets.js';
import { ASSET_PREFIX } from './assets.js';
import { EventFeeds } from './events.js';
import { Snapshotter, type SnapshotSources } from './snapshot.js';

/** The feed's path. */
export const EVENTS_PATH = '/v1/dashboard/events';

/** Adds the dashboard's routes to `app`; sampling starts now and stops when the server closes. */
export function registerDashboard(app: FastifyInstance, assets: DashboardAssets, sources: SnapshotSources): void {
  const feeds = new EventFeeds(new Snapshotter(sources));
  feeds.start();
  app.addHook('onClose', async () => feeds.stop());

  app.get(`${ASSET_PREFIX}:name`, async (request, reply) => {
    const path = request.url.split('?')[0];
    if (!(await assets.sendAsset(path, reply))) throw routeNotFound(request.method, request.url);
    return reply;
  });

  // No HEAD twin: a HEAD request would hold a feed open that sends nothing.
  app.get(EVENTS_PATH, { exposeHeadRoute: false }, async (_request, reply) => {
    if (!feeds.hasRoom)
      throw new ApiError(429, 'Too many dashboard feeds are open; close one and retry.', 'rate_limit_error', null, 'too_many_feeds');
    // Headers set by hooks so far (CORS, with --cors-origin) go out with the stream's own.
    const headers = reply.getHeaders();
    reply.hijack();
    feeds.open(reply.raw, headers);
  });
}
