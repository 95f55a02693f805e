import { describeClusterSuite } from './clusterSuite';

/** The multi-process suite on a 3-master Redis Cluster (REDIS_CLUSTER_NODES). */
describeClusterSuite('cluster');
