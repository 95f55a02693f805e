import { describeClusterSuite } from './clusterSuite';

/**
 * The multi-process suite on a 3-master Redis Cluster (REDIS_CLUSTER_NODES), its commands
 * spread over three partitions (COMMAND_PARTITIONS), one per master.
 */
describeClusterSuite('cluster', 3);
