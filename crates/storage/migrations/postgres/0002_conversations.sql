-- The 24-hour customer-service window: per business number and customer, the last time the
-- customer wrote.
CREATE TABLE conversations (
    phone_number_id TEXT NOT NULL,
    customer        TEXT NOT NULL,
    last_inbound_at BIGINT NOT NULL,
    PRIMARY KEY (phone_number_id, customer)
);

-- Since when wagate has seen this number's webhooks: before that it cannot know the window.
ALTER TABLE phone_numbers ADD COLUMN webhooks_since BIGINT;
