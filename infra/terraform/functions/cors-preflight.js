// CloudFront Function (cloudfront-js-2.0), viewer request, on the media behaviours.
// Answers CORS preflight (OPTIONS) at the edge, as the nginx edge of the local stack does:
// the media bucket has no CORS configuration, so S3 would refuse it. Every other request
// goes on unchanged; the response headers policy adds CORS headers to the real responses.
// Rendered by Terraform: allowed_origins is var.cors_allowed_origins as a JSON array.
var ALLOWED_ORIGINS = ${allowed_origins};

function handler(event) {
  var request = event.request;
  if (request.method !== "OPTIONS") {
    return request;
  }
  var origin = request.headers.origin ? request.headers.origin.value : "";
  var requested = request.headers["access-control-request-headers"];
  var headers = {
    "access-control-allow-methods": { value: "GET, HEAD, OPTIONS" },
    "access-control-allow-headers": { value: requested ? requested.value : "Range" },
    "access-control-max-age": { value: "86400" },
    "vary": { value: "Origin" },
  };
  if (ALLOWED_ORIGINS.indexOf("*") >= 0) {
    headers["access-control-allow-origin"] = { value: "*" };
  } else if (ALLOWED_ORIGINS.indexOf(origin) >= 0) {
    headers["access-control-allow-origin"] = { value: origin };
  }
  return { statusCode: 204, statusDescription: "No Content", headers: headers };
}
