#!/usr/bin/env bash
# `make run`: the whole system on this machine. Starts moto, creates the template's data
# layer in it, serves the functions under the API Gateway paths behind the local gateway
# (SigV4 for the staff routes, like API Gateway's IAM authoriser), and stops everything
# it started on Ctrl-C. The functions run in `cargo lambda watch` when cargo-lambda is
# installed (`make setup` puts it into .venv), else (or with LOCAL_FUNCTIONS=host) in
# one process, `local-functions` (harness::host): the same handlers behind the same
# routes and the same Lambda Invoke API.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
moto_port=${MOTO_PORT:-5000}
api_port=${API_PORT:-9000}
# cargo lambda watch listens here; the local gateway on API_PORT in front of it.
watch_port=${WATCH_PORT:-$((api_port + 1))}
# The simulator next to the API port (9100 for the default 9000).
sim_port=${SIM_PORT:-$((api_port + 100))}
crm_port=${CRM_PORT:-9200}
api_key=${RETELL_API_KEY:-local-test-key}
stack=${LOCAL_STACK_NAME:-polly-local}
mkdir -p .local
export PATH="$here/.venv/bin:$PATH"

for port in "$moto_port" "$api_port" "$watch_port" "$sim_port" "$crm_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; choose others with make run MOTO_PORT=… API_PORT=… (WATCH_PORT=…)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping local stack"
  for pid in "${pids[@]}"; do
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "building the local tooling"
cargo build --locked -q -p polly-tests --bin polly-local --bin retell-sim --bin event-pump \
  --bin local-gateway --bin local-functions --bin crm-sim
cargo build --locked -q -p polly-admin

setsid "$here/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >.local/moto.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION=eu-central-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing

./target/debug/polly-local provision --name "$stack" --provider-api-key "$api_key" \
  --crm-webhook-url "http://127.0.0.1:$crm_port/webhook" --env-file .local/functions.env
# The local CRM (issue 17): verifies the signature, dedupes, shows GET /received.
setsid ./target/debug/crm-sim --port "$crm_port" >.local/crm.log 2>&1 &
pids+=($!)
# The local provider is the simulator; recordings come from it over loopback HTTP.
echo "RETELL_API_BASE_URL=http://127.0.0.1:$sim_port" >>.local/functions.env
echo "RECORDINGS_ALLOW_LOOPBACK=true" >>.local/functions.env
# Links in mails to data subjects point at the local API.
echo "PUBLIC_API_BASE_URL=http://127.0.0.1:$api_port" >>.local/functions.env
# `make sweep NOW=…` may do real runs with a moved clock here; a deployed sweep refuses
# them (the template never sets this; R3.1).
echo "SWEEP_ALLOW_CLOCK_OVERRIDE=true" >>.local/functions.env

setsid ./target/debug/retell-sim --port "$sim_port" --api-key "$api_key" \
  --webhook-url "http://127.0.0.1:$api_port/v1/telephony/retell" >.local/simulator.log 2>&1 &
pids+=($!)

# The agent's configuration (infra/agent) published to the simulator, as `make agent`
# publishes it to the provider (R7.4).
cargo build --locked -q -p polly-agent
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$sim_port") 2>/dev/null && break
  sleep 0.1
done
if ! RETELL_API_BASE_URL="http://127.0.0.1:$sim_port" RETELL_API_KEY="$api_key" \
  POLLY_WEBHOOK_URL="http://127.0.0.1:$api_port/v1/telephony/retell" \
  ./target/debug/polly-agent --publish >.local/agent.log 2>&1; then
  echo "publishing the agent to the simulator failed; see .local/agent.log" >&2
  exit 1
fi

# CALL_ANYTIME=1: the telephony worker's clock is moved into the calling hours, so a
# sign-up is called at once at any hour (in-process functions only).
host_flags=()
if [ -n "${CALL_ANYTIME:-}" ]; then
  LOCAL_FUNCTIONS=host
  host_flags+=(--call-anytime)
fi
if [ "${LOCAL_FUNCTIONS:-}" != host ] && cargo lambda --version >/dev/null 2>&1; then
  functions_runner="cargo lambda watch"
  setsid cargo lambda watch --locked --invoke-address 127.0.0.1 --invoke-port "$watch_port" \
    --disable-cors --env-file .local/functions.env >.local/functions.log 2>&1 &
else
  functions_runner="local-functions (in process)"
  if [ -n "${CALL_ANYTIME:-}" ]; then
    echo "CALL_ANYTIME: the functions run in one process (local-functions --call-anytime)"
  else
    echo "cargo lambda is not installed (or LOCAL_FUNCTIONS=host): the functions run in one process (local-functions)"
  fi
  setsid ./target/debug/local-functions --port "$watch_port" --env-file .local/functions.env \
    "${host_flags[@]}" >.local/functions.log 2>&1 &
fi
watch_pid=$!
pids+=("$watch_pid")
echo "starting the functions with $functions_runner (first time: a few minutes)"
for _ in $(seq 1 1800); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$watch_port") 2>/dev/null; then break; fi
  if ! kill -0 "$watch_pid" 2>/dev/null; then
    echo "the functions stopped; see .local/functions.log" >&2
    exit 1
  fi
  sleep 0.2
done
if [ "$functions_runner" = "cargo lambda watch" ]; then
  # Compile the functions now rather than on the first request (the dsar package builds
  # dsar-api, dsar-staff and dsar-worker).
  cargo build --locked -q -p signup -p telephony -p dsar
fi

# API Gateway's stand-in on the API port: staff routes must be SigV4-signed with a local
# key (testing/testing = the local staff session), everything else goes to the functions.
setsid ./target/debug/local-gateway --port "$api_port" --upstream "http://127.0.0.1:$watch_port" \
  >.local/gateway.log 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null && break
  if ! kill -0 "$gateway_pid" 2>/dev/null; then
    echo "the local gateway stopped; see .local/gateway.log" >&2
    exit 1
  fi
  sleep 0.1
done

# The event pump invokes the workers through the Lambda Invoke API, which API Gateway
# (and so the local gateway) does not offer: it talks to the functions directly.
setsid ./target/debug/event-pump --table "$stack-table" --invoke-url "http://127.0.0.1:$watch_port" \
  >.local/event-pump.log 2>&1 &
pids+=($!)

cat <<TXT

Polly is running locally.
  sign-up page:             http://127.0.0.1:$api_port/signup   (English: /en/signup)
  privacy center:           http://127.0.0.1:$api_port/privacy   (English: /en/privacy)
  OpenAPI description:      http://127.0.0.1:$api_port/v1/openapi.json
  API (API Gateway paths):  http://127.0.0.1:$api_port   (local gateway; functions on $watch_port: $functions_runner)
  AWS emulator (moto):      http://127.0.0.1:$moto_port   (stack "$stack")
  provider simulator:       http://127.0.0.1:$sim_port   (API key "$api_key")
  CRM receiver (crm-sim):   http://127.0.0.1:$crm_port/webhook   (what it got: GET http://127.0.0.1:$crm_port/received)
  logs:                     .local/functions.log, .local/gateway.log, .local/simulator.log, .local/event-pump.log
  agent (infra/agent):      published to the simulator, see .local/agent.log

Sign someone up:
  curl -i -X POST http://127.0.0.1:$api_port/v1/signups \\
    -H 'content-type: application/json' \\
    -d '{"first_name":"Erika","last_name":"Mustermann","email":"erika@example.org","phone":"0170 1234567","notes":"Bitte nachmittags","consent":{"contact_by_phone":true,"privacy_policy_version":"2024-04-08"}}'

The table stream drives the telephony worker (event pump), which places the call at the
simulator; the simulator plays it and sends signed webhooks (call_started, call_ended,
call_analyzed) to the webhook function. A few seconds later:
  grep -h "call placed\|call event recorded" .local/functions.log
Outside the calling hours (Mon-Fri 08-20, Sat 09-18 Berlin time; R7.2) the call is
scheduled for the next slot instead ("outside the calling hours; scheduled"); the event
pump's dispatcher places it then. CALL_ANYTIME=1 make run moves the telephony worker's
clock into the calling hours, so the call is placed at once at any hour.

The staff routes (/v1/admin/...) need a SigV4-signed request (execute-api) from a principal
in StaffPrincipalArns, in AWS and here: the local gateway checks the signature against the
local keys and names the principal as API Gateway would. The emulator's key testing/testing
signs as the local staff session (assumed-role/polly-local-staff/local); the key
local-intruder/local-intruder signs validly but is not staff (403, audited as staff.refused).
  export POLLY_API_URL=http://127.0.0.1:$api_port AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-central-1
  ./target/debug/polly-admin list
  ./target/debug/polly-admin show <request-id>     (polly-admin --help lists every command)
or, from another shell: make admin ARGS="list" (API_PORT=$api_port)

Look at what was stored (encrypted; keys and indexes are opaque):
  AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    .venv/bin/aws dynamodb scan --region eu-central-1 --table-name $stack-table

Press Ctrl-C to stop everything.
TXT
wait "$watch_pid"
