import { MemoryEngine } from '../../shared/engine/memory';
import {
  CONTRACT_EVENT_MAX_BYTES,
  CONTRACT_HISTORY_MAX_BYTES,
  CONTRACT_HISTORY_MAX_LEN,
  CONTRACT_HISTORY_TTL_S,
  describeEngineContract,
} from '../contract/engineContract';

describeEngineContract(
  'memory',
  async () =>
    new MemoryEngine({
      historyMaxLen: CONTRACT_HISTORY_MAX_LEN,
      historyTtlS: CONTRACT_HISTORY_TTL_S,
      historyMaxBytes: CONTRACT_HISTORY_MAX_BYTES,
      eventMaxBytes: CONTRACT_EVENT_MAX_BYTES,
    }),
);
