//! Dify's services beyond the four difyctl fronts: which hold data, which ports they listen on
//! (compose does not say unless a port is published), which scale out.

/// Dify's data services (any profile): StatefulSets with their own volume claims.
pub const STATEFUL: &[&str] = &[
    "db",
    "db_postgres",
    "db_mysql",
    "redis",
    "weaviate",
    "qdrant",
    "pgvector",
    "pgvecto-rs",
    "milvus-standalone",
    "etcd",
    "minio",
    "opensearch",
    "elasticsearch",
    "chroma",
    "oceanbase",
    "couchbase-server",
    "myscale",
    "matrixone",
    "opengauss",
    "vastbase",
    "iris",
    "tidb",
];

/// Ports Dify's services listen on (compose does not say unless a port is published).
pub const KNOWN_PORTS: &[(&str, &[u16])] = &[
    ("db", &[5432]),
    ("db_postgres", &[5432]),
    ("db_mysql", &[3306]),
    ("redis", &[6379]),
    ("sandbox", &[8194]),
    ("ssrf_proxy", &[3128]),
    ("weaviate", &[8080, 50051]),
    ("qdrant", &[6333, 6334]),
    ("pgvector", &[5432]),
    ("pgvecto-rs", &[5432]),
    ("milvus-standalone", &[19530]),
    ("etcd", &[2379]),
    ("minio", &[9000]),
    ("opensearch", &[9200]),
    ("elasticsearch", &[9200]),
    ("chroma", &[8000]),
    ("agent_backend", &[5050]),
    ("local_sandbox", &[5004]),
];

/// The services that scale with replicas (stateless, behind a Service, no leader).
pub const SCALABLE: [&str; 3] = ["api", "worker", "web"];
