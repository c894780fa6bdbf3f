//! SigV4 for `execute-api`: the headers that make a request to an `AWS_IAM` route of
//! API Gateway acceptable, computed by the AWS SDK's own signer (`aws-sigv4`).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// The service name API Gateway verifies signatures for.
pub const SERVICE: &str = "execute-api";

/// The headers to add to a request of `method` to `url` (already percent-encoded) with
/// `headers` (signed as well) and `body`, signed with `credentials` for `region` at
/// `time`: `authorization`, `x-amz-date` and, for temporary credentials,
/// `x-amz-security-token`.
pub fn signing_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("request cannot be signed: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("signing failed: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The signature names the key, the day, the region and `execute-api`, signs host,
    /// date and the given headers, and changes with the body.
    #[test]
    fn signs_for_execute_api_in_the_region_over_the_body() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_888_800);
        let sign_body = |body: &[u8]| {
            signing_headers(
                "POST",
                "https://api.example.org/v1/admin/dsar/x/retry",
                &[("content-type", "application/json")],
                body,
                &creds(None),
                "eu-central-1",
                time,
            )
            .unwrap()
        };
        let h = sign_body(b"{}");
        let auth = header(&h, "authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/eu-central-1/execute-api/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert_eq!(header(&h, "x-amz-date"), Some("20261128T180000Z"));
        assert!(header(&h, "x-amz-security-token").is_none());
        let other = sign_body(b"{\"a\":1}");
        assert_ne!(header(&other, "authorization"), Some(auth));
    }

    /// Temporary credentials (SSO, assumed roles) send their session token, signed.
    #[test]
    fn temporary_credentials_send_their_token() {
        let h = signing_headers(
            "GET",
            "https://api.example.org/v1/admin/dsar?status=open",
            &[],
            b"",
            &creds(Some("tok")),
            "eu-central-1",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-security-token"), Some("tok"));
        assert!(header(&h, "authorization")
            .unwrap()
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token"));
    }
}
