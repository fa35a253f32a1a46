//! Wire compatibility with Envoy's rate limit service v3: every field Quorate reads or writes has upstream's
//! number and type.
//!
//! Requests are written here byte by byte from upstream's definitions (rls.proto, ratelimit.proto,
//! ratelimit_unit.proto, base.proto) and decoded with the generated types; responses are encoded with the
//! generated types and read back field by field. A renumbered or retyped field fails one of these tests.

use prost::Message;
use quorate_proto::envoy::config::core::v3::HeaderValue;
use quorate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{Entry, RateLimitOverride};
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, RateLimit};
use quorate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use quorate_proto::envoy::r#type::v3::RateLimitUnit;

const VARINT: u64 = 0;
const LEN: u64 = 2;

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_field(field: u64, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | VARINT, &mut out);
    varint(value, &mut out);
    out
}

fn len_field(field: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | LEN, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A decoded field: (number, varint value or length-delimited bytes).
#[derive(Debug, PartialEq)]
enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

/// Splits a message into its fields, in order; only the wire types Envoy's RLS messages use.
fn fields(mut bytes: &[u8]) -> Vec<(u64, Value)> {
    fn read_varint(bytes: &mut &[u8]) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return value;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes);
        let value = match key & 7 {
            VARINT => Value::Varint(read_varint(&mut bytes)),
            LEN => {
                let len = read_varint(&mut bytes) as usize;
                let (body, rest) = bytes.split_at(len);
                bytes = rest;
                Value::Bytes(body.to_vec())
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn bytes_of(value: &Value) -> &[u8] {
    match value {
        Value::Bytes(b) => b,
        Value::Varint(v) => panic!("expected a length-delimited field, got varint {v}"),
    }
}

#[test]
fn request_encoded_with_upstream_field_numbers_decodes() {
    // RateLimitDescriptor.Entry: key = 1, value = 2.
    let entry = [len_field(1, b"remote_address"), len_field(2, b"10.0.0.1")].concat();
    let key_only = len_field(1, b"generic_key");
    // RateLimitOverride: requests_per_unit = 1, unit = 2 (envoy.type.v3.RateLimitUnit, MINUTE = 2).
    let limit = [varint_field(1, 10), varint_field(2, 2)].concat();
    // google.protobuf.UInt64Value: value = 1.
    let hits = varint_field(1, 5);
    // RateLimitDescriptor: entries = 1, limit = 2, hits_addend = 3.
    let first = [len_field(1, &entry), len_field(2, &limit), len_field(3, &hits)].concat();
    let second = [len_field(1, &key_only), len_field(3, &[])].concat();
    // RateLimitRequest: domain = 1, descriptors = 2, hits_addend = 3; field 99 is unknown and must be skipped.
    let request = [
        len_field(1, b"edge"),
        len_field(2, &first),
        len_field(2, &second),
        varint_field(3, 3),
        len_field(99, b"future field"),
    ]
    .concat();

    let decoded = RateLimitRequest::decode(request.as_slice()).unwrap();
    assert_eq!(decoded.domain, "edge");
    assert_eq!(decoded.hits_addend, 3);
    assert_eq!(
        decoded.descriptors,
        vec![
            RateLimitDescriptor {
                entries: vec![Entry { key: "remote_address".into(), value: "10.0.0.1".into() }],
                limit: Some(RateLimitOverride { requests_per_unit: 10, unit: RateLimitUnit::Minute as i32 }),
                hits_addend: Some(5),
            },
            // An explicitly set UInt64Value of 0 is present, not absent.
            RateLimitDescriptor {
                entries: vec![Entry { key: "generic_key".into(), value: String::new() }],
                limit: None,
                hits_addend: Some(0),
            },
        ]
    );
}

#[test]
fn rate_limit_units_have_upstream_values() {
    let units = [
        (RateLimitUnit::Unknown, 0),
        (RateLimitUnit::Second, 1),
        (RateLimitUnit::Minute, 2),
        (RateLimitUnit::Hour, 3),
        (RateLimitUnit::Day, 4),
        (RateLimitUnit::Month, 5),
        (RateLimitUnit::Year, 6),
    ];
    for (unit, value) in units {
        assert_eq!(unit as i32, value, "{unit:?}");
    }
    let response_units = [
        (Unit::Unknown, 0),
        (Unit::Second, 1),
        (Unit::Minute, 2),
        (Unit::Hour, 3),
        (Unit::Day, 4),
        (Unit::Month, 5),
        (Unit::Year, 6),
        (Unit::Week, 7),
    ];
    for (unit, value) in response_units {
        assert_eq!(unit as i32, value, "{unit:?}");
    }
    assert_eq!((Code::Unknown as i32, Code::Ok as i32, Code::OverLimit as i32), (0, 1, 2));
}

#[test]
fn response_fields_have_upstream_numbers() {
    let response = RateLimitResponse {
        overall_code: Code::OverLimit as i32,
        statuses: vec![DescriptorStatus {
            code: Code::OverLimit as i32,
            current_limit: Some(RateLimit { name: "per_ip".into(), requests_per_unit: 600, unit: Unit::Minute as i32 }),
            limit_remaining: 7,
            duration_until_reset: Some(prost_types::Duration { seconds: 12, nanos: 500 }),
        }],
        response_headers_to_add: vec![HeaderValue { key: "x-ratelimit-limit".into(), value: "600".into() }],
        raw_body: b"slow down".to_vec(),
    };
    let top = fields(&response.encode_to_vec());
    // RateLimitResponse: overall_code = 1, statuses = 2, response_headers_to_add = 3, raw_body = 5.
    assert_eq!(top[0], (1, Value::Varint(2)));
    assert_eq!(top[1].0, 2);
    assert_eq!(top[2].0, 3);
    assert_eq!(top[3], (5, Value::Bytes(b"slow down".to_vec())));
    assert_eq!(top.len(), 4);

    // DescriptorStatus: code = 1, current_limit = 2, limit_remaining = 3, duration_until_reset = 4.
    let status = fields(bytes_of(&top[1].1));
    assert_eq!(status[0], (1, Value::Varint(2)));
    assert_eq!(status[1].0, 2);
    assert_eq!(status[2], (3, Value::Varint(7)));
    assert_eq!(status[3].0, 4);
    // RateLimit: requests_per_unit = 1, unit = 2, name = 3 (prost writes in field-number order).
    let limit = fields(bytes_of(&status[1].1));
    assert_eq!(limit, vec![(1, Value::Varint(600)), (2, Value::Varint(2)), (3, Value::Bytes(b"per_ip".to_vec()))]);
    // google.protobuf.Duration: seconds = 1, nanos = 2.
    assert_eq!(fields(bytes_of(&status[3].1)), vec![(1, Value::Varint(12)), (2, Value::Varint(500))]);
    // HeaderValue: key = 1, value = 2.
    assert_eq!(
        fields(bytes_of(&top[2].1)),
        vec![(1, Value::Bytes(b"x-ratelimit-limit".to_vec())), (2, Value::Bytes(b"600".to_vec()))]
    );
}

#[test]
fn service_path_is_upstreams() {
    use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::SERVICE_NAME;
    assert_eq!(SERVICE_NAME, "envoy.service.ratelimit.v3.RateLimitService");
}
