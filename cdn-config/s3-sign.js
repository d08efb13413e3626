// AWS Signature Version 4 for the edge's origin requests (njs, nginx's JavaScript module).
//
// The edge fetches `GET /<bucket>/<key>` (path-style) with an empty body and signs
// host;x-amz-content-sha256;x-amz-date. Each nginx variable below is computed once per
// request, and only when nginx builds an origin request (a cache miss or a refresh): cache hits
// run no JavaScript.
//
// Inputs (js_var in s3-credentials.conf, written by render.sh): $s3_access_key,
// $s3_secret_key, $s3_bucket, $s3_region, $s3_host.
// Spec: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html

const crypto = require('crypto');

// SHA-256 of the empty payload (GET has no body).
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SIGNED_HEADERS = 'host;x-amz-content-sha256;x-amz-date';

// URI-encode one path segment the way S3 expects: everything but A-Z a-z 0-9 - _ . ~
function encodeSegment(s) {
    return encodeURIComponent(s).replace(/[!'()*]/g,
        (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

// $s3_date: the request time, e.g. 20261123T201222Z. Read by $s3_authorization too, so the
// X-Amz-Date header and the signature always agree.
function amzDate(r) {
    return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

// $s3_path: /<bucket>/<key>, encoded. r.uri is already decoded and normalised by nginx
// (no "..", no query string: the edge never forwards arguments, so it can never ask for a
// listing or a sub-resource such as ?acl).
function objectPath(r) {
    return '/' + encodeSegment(r.variables.s3_bucket) + r.uri.split('/').map(encodeSegment).join('/');
}

function hmac(key, data) {
    return crypto.createHmac('sha256', key).update(data).digest();
}

// $s3_authorization: the Authorization header value.
function authorization(r) {
    const v = r.variables;
    const date = v.s3_date;
    const day = date.substring(0, 8);
    const scope = day + '/' + v.s3_region + '/s3/aws4_request';
    const canonicalRequest = [
        'GET',
        v.s3_path,
        '',
        'host:' + v.s3_host,
        'x-amz-content-sha256:' + EMPTY_SHA256,
        'x-amz-date:' + date,
        '',
        SIGNED_HEADERS,
        EMPTY_SHA256,
    ].join('\n');
    const stringToSign = [
        'AWS4-HMAC-SHA256',
        date,
        scope,
        crypto.createHash('sha256').update(canonicalRequest).digest('hex'),
    ].join('\n');
    let key = hmac('AWS4' + v.s3_secret_key, day);
    key = hmac(key, v.s3_region);
    key = hmac(key, 's3');
    key = hmac(key, 'aws4_request');
    const signature = crypto.createHmac('sha256', key).update(stringToSign).digest('hex');
    return 'AWS4-HMAC-SHA256 Credential=' + v.s3_access_key + '/' + scope +
        ', SignedHeaders=' + SIGNED_HEADERS + ', Signature=' + signature;
}

export default { amzDate, objectPath, authorization };
