//! The routing table and the one place requests run.
//!
//! [`Route::parse`] decides from the method and the URI *path* alone (old
//! DSAPI clients send absolute-form request targets) which endpoint a request
//! asks for, in the spirit of firecracker's parsed requests; [`run`] then
//! hands it to the handler of its resource. Every variable path segment is
//! either a strict hyphenated UUID or compared for equality with a name we
//! generated, so no client-supplied text ever reaches a filesystem path:
//! traversal attempts in any segment simply match no route (404, as IMGAPI
//! answers malformed UUIDs).

use super::request::path_uuid;
use super::respond::{error_response, method_not_allowed, Resp};
use super::{actions, dsapi, files, images, service, uploads};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use hyper::body::Incoming;
use hyper::{Method, Request};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Everything a handler needs.
pub struct App {
    pub cfg: Config,
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
    /// `http` or `https`, for URLs built from the Host header.
    pub scheme: &'static str,
}

/// What a request asks for, decided from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `GET /`: the HTML catalog.
    Index,
    Ping,
    Metrics,
    ListImages,
    CreateImage,
    GetImage(Uuid),
    /// `POST /images/:uuid?action=…`.
    ImageAction(Uuid),
    DeleteImage(Uuid),
    GetFile(Uuid),
    PutFile(Uuid),
    GetIcon(Uuid),
    PutIcon(Uuid),
    ListDatasets,
    GetDataset(Uuid),
    /// `GET /datasets/:id/:name`; `id` is the segment as sent, for messages.
    DatasetFile {
        uuid: Uuid,
        id: String,
        name: String,
    },
}

impl Route {
    /// The image a route names, if any.
    fn uuid(&self) -> Option<Uuid> {
        match self {
            Route::GetImage(u)
            | Route::ImageAction(u)
            | Route::DeleteImage(u)
            | Route::GetFile(u)
            | Route::PutFile(u)
            | Route::GetIcon(u)
            | Route::PutIcon(u)
            | Route::GetDataset(u)
            | Route::DatasetFile { uuid: u, .. } => Some(*u),
            _ => None,
        }
    }

    /// The route and its metrics label; the label depends on the path's
    /// shape only, so refused methods and bad UUIDs count under it too.
    fn parse(m: &Method, path: &str) -> (&'static str, ApiResult<Route>) {
        let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let get = *m == Method::GET || *m == Method::HEAD;
        // GET/HEAD and one write method on `/images/:uuid/<leaf>`.
        let file_like = |id: &str, read: fn(Uuid) -> Route, write: fn(Uuid) -> Route| {
            path_uuid(id).and_then(|u| {
                if get {
                    Ok(read(u))
                } else if *m == Method::PUT {
                    Ok(write(u))
                } else {
                    Err(method_not_allowed(m))
                }
            })
        };
        match segs.as_slice() {
            [""] if get => ("index", Ok(Route::Index)),
            ["ping"] if get => ("ping", Ok(Route::Ping)),
            ["metrics"] if get => ("metrics", Ok(Route::Metrics)),
            ["images"] if get => ("list_images", Ok(Route::ListImages)),
            ["images"] if *m == Method::POST => ("create_image", Ok(Route::CreateImage)),
            ["images", id] => (
                "image",
                path_uuid(id).and_then(|u| {
                    if get {
                        Ok(Route::GetImage(u))
                    } else if *m == Method::POST {
                        Ok(Route::ImageAction(u))
                    } else if *m == Method::DELETE {
                        Ok(Route::DeleteImage(u))
                    } else {
                        Err(method_not_allowed(m))
                    }
                }),
            ),
            ["images", id, "file"] => ("image_file", file_like(id, Route::GetFile, Route::PutFile)),
            ["images", id, "icon"] => ("image_icon", file_like(id, Route::GetIcon, Route::PutIcon)),
            ["datasets"] if get => ("datasets", Ok(Route::ListDatasets)),
            ["datasets", id] if get => ("dataset", path_uuid(id).map(Route::GetDataset)),
            ["datasets", id, name] if get => (
                "dataset_file",
                path_uuid(id).map(|uuid| Route::DatasetFile {
                    uuid,
                    id: id.to_string(),
                    name: name.to_string(),
                }),
            ),
            _ => (
                "unknown",
                Err(ApiError::not_found(format!(
                    "{m} {} does not exist",
                    path.chars().take(128).collect::<String>()
                ))),
            ),
        }
    }
}

/// Runs a route: the one place that maps routes to their resource's handler.
async fn run(app: &App, route: Route, req: Request<Incoming>) -> ApiResult<Resp> {
    if let Some(u) = route.uuid() {
        // A replica's publish may be newer than our last refresh.
        app.catalog.ensure(u).await;
    }
    match route {
        Route::Index => service::index(app, &req),
        Route::Ping => service::ping(&req),
        Route::Metrics => service::metrics(app, &req),
        Route::ListImages => images::list(app, &req),
        Route::CreateImage => images::create(app, req).await,
        Route::GetImage(u) => images::get(app, &req, u),
        Route::ImageAction(u) => actions::run(app, req, u).await,
        Route::DeleteImage(u) => images::delete(app, &req, u).await,
        Route::GetFile(u) => files::get(app, &req, u, files::Which::File).await,
        Route::GetIcon(u) => files::get(app, &req, u, files::Which::Icon).await,
        Route::PutFile(u) => uploads::put_file(app, req, u).await,
        Route::PutIcon(u) => uploads::put_icon(app, req, u).await,
        Route::ListDatasets => dsapi::list(app, &req),
        Route::GetDataset(u) => dsapi::get(app, &req, u),
        Route::DatasetFile { uuid, id, name } => dsapi::file(app, &req, uuid, &id, &name).await,
    }
}

/// Entry point for one request: routes and runs it, then logs and counts
/// the outcome.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (label, route) = Route::parse(&method, &path);
    let result = match route {
        Ok(route) => run(&app, route, req).await,
        Err(e) => Err(e),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            app.metrics.error(e.code);
            error_response(&e)
        }
    };
    let took = started.elapsed();
    let method_label = match method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    app.metrics
        .request(label, method_label, resp.status().as_u16(), took);
    tracing::info!(
        %method,
        path = %path.chars().take(256).collect::<String>(),
        route = label,
        status = resp.status().as_u16(),
        micros = took.as_micros() as u64,
        "request"
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "01b2c898-945f-11e1-a523-af1afbe22822";

    fn parse(m: Method, path: &str) -> (&'static str, Result<Route, u16>) {
        let (label, r) = Route::parse(&m, path);
        (label, r.map_err(|e| e.status.as_u16()))
    }

    #[test]
    fn routes_by_method_and_path_shape() {
        let u = Uuid::try_parse(U).unwrap();
        assert_eq!(parse(Method::HEAD, "/"), ("index", Ok(Route::Index)));
        assert_eq!(parse(Method::POST, "/"), ("unknown", Err(404)));
        assert_eq!(parse(Method::PUT, "/images"), ("unknown", Err(404)));
        assert_eq!(
            parse(Method::POST, "/images"),
            ("create_image", Ok(Route::CreateImage))
        );
        assert_eq!(
            parse(Method::DELETE, &format!("/images/{U}")),
            ("image", Ok(Route::DeleteImage(u)))
        );
        assert_eq!(
            parse(Method::PUT, &format!("/images/{U}")),
            ("image", Err(405))
        );
        assert_eq!(parse(Method::PUT, "/images/x"), ("image", Err(404)));
        assert_eq!(
            parse(Method::PUT, &format!("/images/{U}/icon")),
            ("image_icon", Ok(Route::PutIcon(u)))
        );
        assert_eq!(
            parse(Method::DELETE, &format!("/images/{U}/file")),
            ("image_file", Err(405))
        );
        assert_eq!(
            parse(Method::GET, "/datasets/../../etc/passwd"),
            ("unknown", Err(404))
        );
        assert_eq!(
            parse(Method::GET, &format!("/datasets/{}/f", U.to_uppercase())),
            (
                "dataset_file",
                Ok(Route::DatasetFile {
                    uuid: u,
                    id: U.to_uppercase(),
                    name: "f".into()
                })
            )
        );
        assert_eq!(
            parse(Method::POST, &format!("/datasets/{U}")),
            ("unknown", Err(404))
        );
    }
}
