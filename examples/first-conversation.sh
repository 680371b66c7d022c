#!/bin/sh
# The README's first conversation as a script: a customer writes, you reply at once, and the
# reply is followed until the customer has read it. Needs curl and python3.
#
#   WAGATE_BOOTSTRAP_API_KEY=dev-key wagate serve      # in one shell
#   sh examples/first-conversation.sh                  # in another
#
# WAGATE_URL (default http://localhost:8080), KEY (default dev-key) and CUSTOMER (default
# +15551234567) change what it talks to.
set -eu
URL=${WAGATE_URL:-http://localhost:8080}
KEY=${KEY:-dev-key}
CUSTOMER=${CUSTOMER:-+15551234567}

api() {
    method=$1 path=$2
    shift 2
    curl -sS --fail-with-body -X "$method" "$URL$path" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' "$@"
}

# A field of the JSON on standard input: `field id`, `field data.0.id`.
field() {
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}

FROM=$(api GET /v1/phone-numbers | python3 -c 'import json, sys
print(next(n["id"] for n in json.load(sys.stdin)["data"] if n["default"]))')
echo "sending from $FROM"

# A customer writes to you: the answer comes once wagate has stored the message, so the 24-hour
# window is open for the reply that follows at once.
api POST /sandbox/simulate/inbound -d '{"phone_number_id": "'"$FROM"'", "from": "'"$CUSTOMER"'",
    "name": "Ana", "message": {"type": "text", "text": {"body": "Hi! Where is my order?"}}}' >/dev/null
echo "$CUSTOMER wrote"

ID=$(api POST /v1/messages -d '{"from": "'"$FROM"'", "to": "'"$CUSTOMER"'", "type": "text",
    "text": {"body": "On its way!"}}' | field id)
echo "replied: $ID"

for _ in $(seq 1 200); do
    STATUS=$(api GET "/v1/messages/$ID" | field status)
    if [ "$STATUS" = read ]; then
        echo "status: read"
        api GET "/v1/messages/$ID"
        echo
        exit 0
    fi
    sleep 0.1
done
echo "status: $STATUS (not read within 20 s)" >&2
exit 1
