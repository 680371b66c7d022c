-- What each key may do: `admin`, `send`, `read`, joined by commas. Keys made before had every
-- right, so they keep it.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
