/**
 * The cluster transport: who a node is (identity), how nodes find each other (mDNS and static
 * peers), the secure framed connection between two of them (handshake, encrypted records, frames of
 * raw bytes or JSON, requests and responses, keepalives) and link measurement. It moves bytes and
 * knows nothing of models; the mesh (mesh/) runs a plan over it.
 */

export { isLoopbackAddress } from './address.js';
export { type ConnectOptions, connectPeer } from './connect.js';
export {
  type CloseInfo,
  type ConnectionOptions,
  type PeerConnectionEvents,
  type PeerIdentity,
  type RequestOptions,
  PeerConnection,
} from './connection.js';
export {
  type DiscoveredPeer,
  type DiscoveryEvents,
  type DiscoveryOptions,
  Discovery,
  MAX_MDNS_PEERS,
  MDNS_SERVICE_TYPE,
} from './discovery.js';
export { DEFAULT_MAX_PAYLOAD_BYTES, FrameDecoder } from './frame-decoder.js';
export {
  type DTypeCode,
  type Frame,
  type FrameHeader,
  type FrameMeta,
  DType,
  FIRST_APP_FRAME_TYPE,
  FRAME_HEADER_BYTES,
  FRAME_VERSION,
  FrameFlags,
  encodeFrame,
  frameJson,
  jsonPayload,
} from './frame.js';
export { PROTOCOL_VERSION } from './handshake.js';
export {
  type ClusterKeyKind,
  type ClusterSecret,
  GENERATED_KEY_PREFIX,
  MIN_PASSPHRASE_CHARS,
  checkKeyStrength,
  deriveClusterSecret,
  deriveClusterSecretSync,
  generateClusterKey,
  isGeneratedKey,
} from './cluster-key.js';
export { LOCAL_KEY_FILE, localClusterSecret, localKeyPath, stateDir } from './local-key.js';
export { type NodeIdentity, loadNodeIdentity } from './identity.js';
export {
  type BandwidthMeasurement,
  type LatencyMeasurement,
  type LinkMeasurement,
  measureBandwidth,
  measureLatency,
  measureLink,
} from './links.js';
export { type PeerAddress, DEFAULT_CLUSTER_PORT, parsePeerAddress, parsePeerList } from './peer-address.js';
export { type ClusterServerEvents, type ClusterServerOptions, type ListenAddress, ClusterServer } from './server.js';
