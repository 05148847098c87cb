#!/usr/bin/env bash
# Start the cluster's MLflow tracking server on the head (docs/cluster.md, "MLflow server"):
#
#   ray exec cluster/aws.yaml 'bash ~/tdrl/cluster/mlflow_server.sh s3://my-bucket/tdrl/mlartifacts'
#
# - MLflow's own authentication (--app-name basic-auth): one user, `tdrl`, whose password the head
#   generated (node_auth.sh); every node has it in ~/.mlflow/credentials, so Ray Train's workers log
#   without anything in the job's environment. Requests without it get 401. On KubeRay (no
#   node_auth.sh) the password is MLFLOW_TRACKING_PASSWORD, which every pod has from the Secret
#   tdrl-mlflow (user MLFLOW_TRACKING_USERNAME), and the session key is made here.
# - Bound to the head's private address (what Ray registered the node with), not every interface: the
#   cluster's nodes reach it there; the security group / firewall admits nothing from outside, and you
#   reach it through an SSH tunnel (docs/cluster.md).
# - Runs and the auth database in SQLite files under $HOME on the head (absolute URIs); artifacts go
#   to the bucket through the server (clients need no bucket credentials).
# Prints the MLFLOW_TRACKING_URI to give the jobs. TDRL_MLFLOW_HOST / TDRL_MLFLOW_PORT /
# TDRL_MLFLOW_WORKERS override the address, port and server processes (the tests: 127.0.0.1, 1).
set -euo pipefail
artifacts=${1:?usage: mlflow_server.sh ARTIFACTS_URI (e.g. s3://my-bucket/tdrl/mlartifacts)}
dir=${TDRL_AUTH_DIR:-$HOME/.tdrl-cluster-auth}
port=${TDRL_MLFLOW_PORT:-5000}
host=${TDRL_MLFLOW_HOST:-$(python3 -c 'import ray; print(ray.util.get_node_ip_address())')}
user=tdrl  # node_auth.sh's user
if [ -s "$dir/mlflow_password" ]; then
  password=$(cat "$dir/mlflow_password")
  secret_key=$(cat "$dir/mlflow_secret_key")
elif [ -n "${MLFLOW_TRACKING_PASSWORD:-}" ]; then
  user=${MLFLOW_TRACKING_USERNAME:-tdrl}
  password=$MLFLOW_TRACKING_PASSWORD
  secret_key=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
else
  echo "tdrl: no MLflow password: $dir/mlflow_password is missing (run 'bash ~/tdrl/cluster/node_auth.sh head'" \
       "first) and MLFLOW_TRACKING_PASSWORD is not set (KubeRay: the Secret tdrl-mlflow)" >&2
  exit 1
fi
umask 077
cat > "$HOME/mlflow-auth.ini" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///$HOME/mlflow-auth.db
admin_username = $user
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
# The admin password is read only when the auth database is first created (MLflow ignores it after).
MLFLOW_AUTH_CONFIG_PATH="$HOME/mlflow-auth.ini" \
MLFLOW_AUTH_ADMIN_PASSWORD="$password" \
MLFLOW_FLASK_SERVER_SECRET_KEY="$secret_key" \
  setsid nohup mlflow server --app-name basic-auth --host "$host" --port "$port" \
    --workers "${TDRL_MLFLOW_WORKERS:-4}" \
    --backend-store-uri "sqlite:///$HOME/mlflow.db" --artifacts-destination "$artifacts" \
    > "$HOME/mlflow.log" 2>&1 < /dev/null &
echo "$!" > "$HOME/mlflow.pid"
echo "MLFLOW_TRACKING_URI=http://$host:$port"
