//! [`RedisStoreBuilder::from_env`]: the topology and its certificates from
//! environment variables, named as the project's test-bed contract names
//! them, so that a deployment switches topology without a rebuild.

use super::{RedisStore, RedisStoreBuilder};
use crate::Error;

/// The URL used when `REDIS_URL` is not set.
const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

/// A comma-separated list of URLs.
fn urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The variable's value, if it is set (set but not Unicode is an error).
fn var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::unavailable(format!("{name} is not valid Unicode")))
        }
    }
}

/// Refuses a variable that needs a feature this build lacks.
fn needs(name: &str, feature: &str, enabled: bool) -> Result<(), Error> {
    if enabled || std::env::var_os(name).is_none() {
        return Ok(());
    }
    Err(Error::unavailable(format!(
        "{name} is set, but sessionkit was built without its `{feature}` feature"
    )))
}

impl RedisStoreBuilder {
    /// A store for the Redis the environment names:
    ///
    /// - `REDIS_CLUSTER_URLS`: comma-separated seed nodes of a Redis
    ///   Cluster (`cluster`, feature `cluster`);
    /// - else `REDIS_SENTINEL_URLS` (comma-separated) with
    ///   `REDIS_SENTINEL_SERVICE`, the primary's name
    ///   (`sentinel`, feature `sentinel`);
    /// - else `REDIS_URL` (`redis://` or `rediss://`; default
    ///   `redis://127.0.0.1:6379/`);
    ///
    /// and for TLS (feature `tls`) `REDIS_CA_FILE`, a PEM file of the CA to
    /// trust (`with_tls_ca`), and `REDIS_CLIENT_CERT` with
    /// `REDIS_CLIENT_KEY`, PEM files of a client certificate
    /// (`with_tls_client_cert`). The
    /// builder's other settings stay as they are.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`], naming the variable, if both
    /// `REDIS_CLUSTER_URLS` and `REDIS_SENTINEL_URLS` are set, the sentinels
    /// come without a service name, a URL is invalid, a certificate file
    /// cannot be read (or only one of the client pair is set), or a
    /// variable needs a feature this build lacks.
    pub async fn from_env(self) -> Result<RedisStore, Error> {
        needs("REDIS_CLUSTER_URLS", "cluster", cfg!(feature = "cluster"))?;
        needs(
            "REDIS_SENTINEL_URLS",
            "sentinel",
            cfg!(feature = "sentinel"),
        )?;
        for name in ["REDIS_CA_FILE", "REDIS_CLIENT_CERT", "REDIS_CLIENT_KEY"] {
            needs(name, "tls", cfg!(feature = "tls"))?;
        }
        let builder = self.certificates_from_env()?;
        let (cluster, sentinels) = (var("REDIS_CLUSTER_URLS")?, var("REDIS_SENTINEL_URLS")?);
        if cluster.is_some() && sentinels.is_some() {
            return Err(Error::unavailable(
                "REDIS_CLUSTER_URLS and REDIS_SENTINEL_URLS exclude each other",
            ));
        }
        #[cfg(feature = "cluster")]
        if let Some(list) = cluster {
            let urls = urls(&list);
            if urls.is_empty() {
                return Err(Error::unavailable("REDIS_CLUSTER_URLS names no node"));
            }
            return builder.cluster(urls).await;
        }
        #[cfg(feature = "sentinel")]
        if let Some(list) = sentinels {
            let service = var("REDIS_SENTINEL_SERVICE")?.ok_or_else(|| {
                Error::unavailable("REDIS_SENTINEL_URLS needs REDIS_SENTINEL_SERVICE")
            })?;
            let urls = urls(&list);
            if urls.is_empty() {
                return Err(Error::unavailable("REDIS_SENTINEL_URLS names no sentinel"));
            }
            return builder.sentinel(urls, &service).await;
        }
        #[cfg(not(feature = "cluster"))]
        let _ = cluster;
        #[cfg(not(feature = "sentinel"))]
        let _ = sentinels;
        let url = var("REDIS_URL")?.unwrap_or_else(|| DEFAULT_URL.to_owned());
        builder.connect(url.as_str()).await.map_err(|e| match e {
            Error::Unavailable(source) => {
                Error::unavailable(format!("REDIS_URL: {}", crate::error::Chain(&*source)))
            }
            other => other,
        })
    }

    #[cfg(feature = "tls")]
    fn certificates_from_env(mut self) -> Result<Self, Error> {
        let read = |name: &str| -> Result<Option<Vec<u8>>, Error> {
            match var(name)? {
                Some(path) => std::fs::read(&path)
                    .map(Some)
                    .map_err(|e| Error::unavailable(format!("{name}={path}: {e}"))),
                None => Ok(None),
            }
        };
        if let Some(ca) = read("REDIS_CA_FILE")? {
            self = self.with_tls_ca(ca);
        }
        match (read("REDIS_CLIENT_CERT")?, read("REDIS_CLIENT_KEY")?) {
            (Some(cert), Some(key)) => Ok(self.with_tls_client_cert(cert, key)),
            (None, None) => Ok(self),
            _ => Err(Error::unavailable(
                "REDIS_CLIENT_CERT and REDIS_CLIENT_KEY go together",
            )),
        }
    }

    #[cfg(not(feature = "tls"))]
    #[allow(clippy::unnecessary_wraps)]
    fn certificates_from_env(self) -> Result<Self, Error> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::urls;

    #[test]
    fn a_url_list_is_split_on_commas_and_trimmed() {
        assert_eq!(
            urls(" redis://a:1/, redis://b:2/ ,,"),
            ["redis://a:1/", "redis://b:2/"]
        );
        assert!(urls(" , ").is_empty());
    }
}
