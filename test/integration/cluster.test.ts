import { describeClusterSuite } from './clusterSuite';

/** The multi-process suite on one Redis server (REDIS_URL). */
describeClusterSuite('single');
