#!/usr/bin/env bash
# Start the cluster's MLflow tracking server on the head (docs/cluster.md, "MLflow server"):
#
#   ray exec cluster/aws.yaml 'bash ~/tdrl/cluster/mlflow_server.sh s3://my-bucket/tdrl/mlartifacts'
#
# - MLflow's own authentication (--app-name basic-auth): one user, `tdrl`, whose password the head
#   generated (node_auth.sh); every node has it in ~/.mlflow/credentials, so Ray Train's workers log
#   without anything in the job's environment. Requests without it get 401.
# - Bound to the head's private address (what Ray registered the node with), not 0.0.0.0: the
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
for name in mlflow_password mlflow_secret_key; do
  [ -s "$dir/$name" ] || { echo "tdrl: $dir/$name is missing: run 'bash ~/tdrl/cluster/node_auth.sh head' first" >&2; exit 1; }
done
umask 077
cat > "$HOME/mlflow-auth.ini" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///$HOME/mlflow-auth.db
admin_username = tdrl
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
# The admin password is read only when the auth database is first created (MLflow ignores it after).
MLFLOW_AUTH_CONFIG_PATH="$HOME/mlflow-auth.ini" \
MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$dir/mlflow_password")" \
MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$dir/mlflow_secret_key")" \
  setsid nohup mlflow server --app-name basic-auth --host "$host" --port "$port" \
    --workers "${TDRL_MLFLOW_WORKERS:-4}" \
    --backend-store-uri "sqlite:///$HOME/mlflow.db" --artifacts-destination "$artifacts" \
    > "$HOME/mlflow.log" 2>&1 < /dev/null &
echo "$!" > "$HOME/mlflow.pid"
echo "MLFLOW_TRACKING_URI=http://$host:$port"
