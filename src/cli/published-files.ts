/**
 * The hub as a node reads it (mesh/hub-shard.ts's PublishedFiles): the node's own hub client, so
 * its endpoint, token and proxies are its own, whatever the coordinator's are.
 */
import type { PublishedFiles } from '../mesh/hub-shard.js';
import { HubClient } from '../store/hub-client.js';

/** Published files read through a hub client made from this process's environment. */
export function publishedFiles(client: HubClient = new HubClient()): PublishedFiles {
  return {
    where: client.endpoint,
    read: (repo, commit, path, start, length, signal) => client.readRange(client.fileUrl(repo, commit, path), start, length, signal),
    stream: (repo, commit, path, start, end, signal) => client.openRange(client.fileUrl(repo, commit, path), start, end, signal),
  };
}
