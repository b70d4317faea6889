-- The device adapter catalogue (issue 16): the two adapters the gateway
-- ships, with the JSON Schemas of their settings, so that the Dashboard API
-- validates a device's config exactly as the gateway will (the gateway
-- validates again before use). The schemas are the adapters' own
-- (internal/edge/devices/hikvision.Schema, zkteco.Schema): a test in
-- cmd/staffctl fails when they drift apart. A new version of an adapter's
-- settings is a new row (type, version), added by a later migration.
-- Settings marked "writeOnly" (the password, the comm key) are kept for the
-- gateway but never answered back by the Dashboard API.

-- +goose Up
INSERT INTO device_adapters (type, vendor, version, config_schema) VALUES
('hikvision', 'Hikvision', '1', '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hikvision ISAPI device settings",
  "type": "object",
  "required": ["username", "password"],
  "additionalProperties": false,
  "properties": {
    "username": {"type": "string", "minLength": 1, "maxLength": 32},
    "password": {"type": "string", "minLength": 1, "maxLength": 64, "writeOnly": true},
    "scheme": {"enum": ["http", "https"], "default": "http"},
    "insecure_skip_verify": {"type": "boolean", "default": false},
    "doors": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 64}, "maxItems": 64, "uniqueItems": true},
    "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "default": 10000},
    "stream_idle_seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 40},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 30, "default": 30},
    "time_zone": {"type": "string", "maxLength": 64}
  }
}'),
('zkteco', 'ZKTeco', '1', '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ZKTeco terminal settings",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "comm_key": {"type": "integer", "minimum": 0, "maximum": 999999, "default": 0, "writeOnly": true, "description": "the device''s communication password (0: none)"},
    "transport": {"enum": ["tcp", "udp"], "default": "tcp"},
    "time_zone": {"type": "string", "minLength": 1, "default": "UTC", "description": "IANA zone of the device clock"},
    "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "default": 5000, "description": "per-request timeout"},
    "unlock_seconds": {"type": "integer", "minimum": 1, "maximum": 60, "default": 3},
    "unlock_units_per_second": {"type": "integer", "enum": [1, 10], "default": 10, "description": "CMD_UNLOCK units: 10 (tenths, pyzk) or 1 (seconds)"},
    "idle_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 30000, "description": "live-session silence before a liveness probe"},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 500}
  }
}')
ON CONFLICT (type, version) DO NOTHING;

-- +goose Down
DELETE FROM device_adapters WHERE (type, version) IN (('hikvision', '1'), ('zkteco', '1'));
