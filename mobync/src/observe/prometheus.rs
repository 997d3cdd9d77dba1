//! The Prometheus text format of the app's metrics (feature `prometheus`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// Upper bounds of the buckets of the `_seconds` histograms.
const SECONDS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds of the buckets of the `_bytes` histograms.
const BYTES: [f64; 9] = [256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0];

/// The app's metrics in Prometheus's text format: mobync's (see
/// [`super::names`]) and the app's own, from one recorder.
///
/// [`Prometheus::install`] makes metrics-exporter-prometheus's recorder the
/// process's `metrics` recorder (histograms with buckets for `_seconds` and
/// `_bytes`); an app that built its own keeps it and wraps its handle
/// ([`Prometheus::from_handle`]). It is a Rocket route (`GET`), mounted where
/// the app wants it; behind the app's own guards, call
/// [`render`](Prometheus::render) from a route of its own.
///
/// ```no_run
/// # #[cfg(feature = "rocket")] {
/// let metrics = mobync::observe::Prometheus::install().expect("the only recorder");
/// let rocket = rocket::build().mount("/metrics", metrics);
/// # }
/// ```
#[derive(Clone)]
pub struct Prometheus {
    handle: PrometheusHandle,
}

impl Prometheus {
    /// Installs the Prometheus recorder as the process's `metrics` recorder
    /// (an error if one is installed already), and a thread that keeps its
    /// histograms in shape (its upkeep, every 5 s).
    pub fn install() -> Result<Prometheus, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &BYTES))
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("mobync-metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .map_err(|e| e.to_string())?;
        Ok(Prometheus { handle })
    }

    /// Wraps the handle of a recorder the app installed itself.
    pub fn from_handle(handle: PrometheusHandle) -> Prometheus {
        Prometheus { handle }
    }

    /// The metrics, in Prometheus's text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(feature = "rocket")]
mod route {
    use super::Prometheus;
    use rocket::data::Data;
    use rocket::http::{ContentType, Method};
    use rocket::request::Request;
    use rocket::route::{Handler, Outcome, Route};

    #[rocket::async_trait]
    impl Handler for Prometheus {
        async fn handle<'r>(&self, req: &'r Request<'_>, _data: Data<'r>) -> Outcome<'r> {
            let text = ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]);
            Outcome::from(req, (text, self.render()))
        }
    }

    impl From<Prometheus> for Vec<Route> {
        fn from(metrics: Prometheus) -> Vec<Route> {
            let mut route = Route::new(Method::Get, "/", metrics);
            route.name = Some("mobync_metrics".into());
            vec![route]
        }
    }
}
