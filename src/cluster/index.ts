/**
 * The cluster transport: node identity, discovery, membership, authenticated framed connections
 * and link measurement. Knows nothing of models; the mesh builds on it.
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
export { type DiscoveredPeer, type DiscoveryEvents, type DiscoveryOptions, Discovery, MDNS_SERVICE_TYPE } from './discovery.js';
export { type DTypeCode, DType, Q8_0_BLOCK_BYTES, Q8_0_BLOCK_VALUES, dtypeName, typedPayloadBytes } from './dtype.js';
export { DEFAULT_MAX_PAYLOAD_BYTES, FrameDecoder } from './frame-decoder.js';
export {
  type Frame,
  type FrameHeader,
  type FrameMeta,
  FIRST_APP_FRAME_TYPE,
  FRAME_HEADER_BYTES,
  FRAME_VERSION,
  FrameFlags,
  encodeFrame,
  frameFloat16Bits,
  frameFloat32,
  frameInt32,
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
export { type NodeIdentity, type NodeInfo, describeNode, loadNodeIdentity } from './identity.js';
export {
  type BandwidthMeasurement,
  type LatencyMeasurement,
  type LinkMeasurement,
  measureBandwidth,
  measureLatency,
  measureLink,
} from './links.js';
export { type Member, type MemberState, type MembershipEvents, type MembershipOptions, Membership } from './membership.js';
export { type PeerAddress, DEFAULT_CLUSTER_PORT, parsePeerAddress, parsePeerList } from './peer-address.js';
export { type ClusterServerEvents, type ClusterServerOptions, type ListenAddress, ClusterServer } from './server.js';
