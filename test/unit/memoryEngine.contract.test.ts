import { MemoryEngine } from '../../shared/engine/memory';
import {
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
    }),
);
