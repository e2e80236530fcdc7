//! The wire side of the layer: which service and operation a request is, and errors in each
//! service's own format, as the SDK parses them. EC2 answers `<Response><Errors>`; the other
//! query services (IAM, STS, ELB, ELBv2) `<ErrorResponse>`; S3 a bare `<Error>`; EKS (REST
//! JSON) puts the code in the `x-amzn-ErrorType` header; ECR and KMS (JSON 1.1) in `__type`.

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{json, Value};

/// The services `mlops` calls, told apart by the signing name in the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Iam,
    Sts,
    S3,
    Eks,
    Ecr,
    Kms,
    /// Classic and v2 load balancing: one signing name, one error format.
    Elb,
    Other,
}

/// One request, read once.
#[derive(Clone)]
pub struct Call {
    pub service: Service,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The path's segments, percent-decoded.
    pub segments: Vec<String>,
    /// The form parameters of a query-protocol request, decoded.
    pub params: Vec<(String, String)>,
}

impl Call {
    pub fn of(parts: &http::request::Parts, body: Bytes) -> Call {
        let signing_name = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(3))
            .unwrap_or_default();
        let service = match signing_name {
            "ec2" => Service::Ec2,
            "iam" => Service::Iam,
            "sts" => Service::Sts,
            "s3" => Service::S3,
            "eks" => Service::Eks,
            "ecr" => Service::Ecr,
            "kms" => Service::Kms,
            "elasticloadbalancing" => Service::Elb,
            _ => Service::Other,
        };
        let params = match service {
            Service::Ec2 | Service::Iam | Service::Sts | Service::Elb => {
                form(&String::from_utf8_lossy(&body))
            }
            _ => Vec::new(),
        };
        let segments = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect();
        Call {
            service,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body,
            segments,
            params,
        }
    }

    /// The value of the form parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body (EKS, ECR), or `Null`.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The operation's name: `Action` of the query services, the `X-Amz-Target` of ECR and KMS, the
    /// method and path shape of EKS (`CreateCluster`...), the method and path of S3.
    pub fn operation(&self) -> String {
        match self.service {
            Service::Ec2 | Service::Iam | Service::Sts | Service::Elb => {
                self.param("Action").unwrap_or("Unknown").to_string()
            }
            Service::Ecr | Service::Kms => self
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or("Unknown")
                .to_string(),
            Service::Eks => self.eks_operation().to_string(),
            Service::S3 if self.is_create_bucket() => "CreateBucket".to_string(),
            Service::S3 | Service::Other => format!("{} {}", self.method, self.uri),
        }
    }

    /// S3's `CreateBucket`: a PUT on the bucket itself, without a sub-resource.
    pub fn is_create_bucket(&self) -> bool {
        self.service == Service::S3
            && self.method == Method::PUT
            && self.segments.len() == 1
            && self.uri.query().is_none_or(|q| q == "x-id=CreateBucket")
    }

    fn eks_operation(&self) -> &'static str {
        let s: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match (&self.method, s.as_slice()) {
            (&Method::POST, ["clusters"]) => "CreateCluster",
            (&Method::GET, ["clusters", _]) => "DescribeCluster",
            (&Method::DELETE, ["clusters", _]) => "DeleteCluster",
            (&Method::POST, ["clusters", _, "node-groups"]) => "CreateNodegroup",
            (&Method::GET, ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
            (&Method::DELETE, ["clusters", _, "node-groups", _]) => "DeleteNodegroup",
            (&Method::POST, ["clusters", _, "access-entries"]) => "CreateAccessEntry",
            (&Method::POST, ["clusters", _, "access-entries", _, "access-policies"]) => {
                "AssociateAccessPolicy"
            }
            _ => "OtherEks",
        }
    }
}

/// An answer, before it becomes a response (so that the clock can rewrite moto's).
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn into_response(self) -> hyper::Response<Full<Bytes>> {
        let mut response = hyper::Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
                response.headers_mut().append(name, value.clone());
            }
        }
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, self.body.len().into());
        response
    }

    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// This answer with a new JSON body.
    pub fn with_json(mut self, body: &Value) -> Answer {
        self.body = Bytes::from(body.to_string());
        self
    }

    pub fn with_text(mut self, body: String) -> Answer {
        self.body = Bytes::from(body);
        self
    }
}

/// The service's throttling error, as AWS sends it.
pub fn throttled(service: Service) -> Answer {
    match service {
        Service::Ec2 => error(
            service,
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ),
        Service::S3 => error(
            service,
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        Service::Eks => error(
            service,
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Service::Ecr | Service::Kms => error(
            service,
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Service::Iam | Service::Sts | Service::Elb | Service::Other => error(
            service,
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
        ),
    }
}

/// The service's internal error, as AWS sends it.
pub fn server_error(service: Service) -> Answer {
    let code = match service {
        Service::Ec2 | Service::S3 => "InternalError",
        Service::Iam => "ServiceFailure",
        Service::Eks | Service::Ecr => "ServerException",
        Service::Kms => "KMSInternalException",
        Service::Sts | Service::Elb | Service::Other => "InternalFailure",
    };
    error(
        service,
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        "We encountered an internal error. Please try again.",
    )
}

/// An error of `service` with `code` and `message`, in the service's wire format.
pub fn error(service: Service, status: StatusCode, code: &str, message: &str) -> Answer {
    let request_id = "00000000-0000-4000-8000-00000000aws1";
    let fault = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut headers = HeaderMap::new();
    let (content_type, body) = match service {
        Service::Ec2 => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        Service::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId><HostId>layer</HostId></Error>"
            ),
        ),
        Service::Eks => {
            headers.insert("x-amzn-ErrorType", HeaderValue::from_str(code).unwrap());
            ("application/json", json!({ "message": message }).to_string())
        }
        Service::Ecr | Service::Kms => (
            "application/x-amz-json-1.1",
            json!({ "__type": code, "message": message }).to_string(),
        ),
        Service::Iam | Service::Sts | Service::Elb | Service::Other => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
    };
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    headers.insert("x-amzn-RequestId", HeaderValue::from_static(request_id));
    Answer {
        status,
        headers,
        body: Bytes::from(body),
    }
}

/// The text of the first `<tag>` in an XML body.
pub fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding, `+` as a space.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
