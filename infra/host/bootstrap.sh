#!/bin/bash
# Boots the single Restate node of RestateStack (Amazon Linux 2023, arm64).
#  1. attaches the data volume (waiting while a replaced instance still holds it), formats it once, mounts it;
#  2. runs restate-server in Docker with its data on that volume and its log in CloudWatch;
#  3. runs an OpenTelemetry collector that forwards Restate's traces to AWS X-Ray;
#  4. with a self-signed certificate: runs nginx terminating TLS on 443 in front of the ingress.
# The ${...} placeholders are filled in by infra/constructs/restate_host.py.
set -euo pipefail

imds() {
  local token
  token=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
  curl -s -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
INSTANCE_ID=$(imds instance-id)
REGION=$(imds placement/region)

# 1. Data volume. CloudFormation starts a replacement instance before it stops the old one,
#    so the attach is retried until the old instance has let go of the volume.
until aws ec2 attach-volume --region "$REGION" --volume-id "${VOLUME_ID}" \
      --instance-id "$INSTANCE_ID" --device /dev/sdf >/dev/null 2>&1; do
  sleep 10
done
SERIAL=$(echo "${VOLUME_ID}" | tr -d '-')
DEVICE=""
for _ in $(seq 1 90); do
  DEVICE=$(readlink -f "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$SERIAL" || true)
  [ -b "$DEVICE" ] && break
  sleep 2
done
blkid "$DEVICE" >/dev/null || mkfs.xfs "$DEVICE"
mkdir -p /var/lib/restate
mount "$DEVICE" /var/lib/restate
grep -q /var/lib/restate /etc/fstab || \
  echo "UUID=$(blkid -s UUID -o value "$DEVICE") /var/lib/restate xfs defaults,nofail 0 2" >> /etc/fstab

dnf install -y docker
systemctl enable --now docker

# 3. Traces: OTLP from Restate on 127.0.0.1:4317, exported to X-Ray.
mkdir -p /etc/otel
cat > /etc/otel/config.yaml <<'CONF'
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
processors:
  batch: {}
exporters:
  awsxray: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [awsxray]
CONF
docker run -d --name otel --restart always --network host -e AWS_REGION="$REGION" \
  -v /etc/otel/config.yaml:/etc/otel/config.yaml:ro \
  "${OTEL_IMAGE}" --config /etc/otel/config.yaml

# 2. Restate. A fixed node name: a replacement instance must take over the same node's data.
docker run -d --name restate --restart always --network host \
  -v /var/lib/restate:/restate-data \
  --log-driver awslogs --log-opt awslogs-region="$REGION" \
  --log-opt awslogs-group="${LOG_GROUP}" --log-opt awslogs-stream=restate \
  -e AWS_REGION="$REGION" \
  -e RESTATE_BASE_DIR=/restate-data \
  -e RESTATE_NODE_NAME=restate-1 \
  -e RESTATE_DISABLE_TELEMETRY=true \
  -e RESTATE_TRACING_ENDPOINT=http://127.0.0.1:4317 \
  -e RESTATE_INGRESS__BIND_ADDRESS=0.0.0.0:8080 \
  -e RESTATE_ADMIN__BIND_ADDRESS=0.0.0.0:9070 \
  "${RESTATE_IMAGE}"

# 4. TLS in front of the ingress, unless a load balancer with an ACM certificate does it.
if [ "${SELF_SIGNED_TLS}" = "true" ]; then
  mkdir -p /etc/restate-tls
  [ -f /etc/restate-tls/cert.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
    -subj "/CN=restate-ingress" -keyout /etc/restate-tls/key.pem -out /etc/restate-tls/cert.pem
  cat > /etc/restate-tls/nginx.conf <<'CONF'
events {}
http {
  server {
    listen 443 ssl;
    ssl_certificate /etc/restate-tls/cert.pem;
    ssl_certificate_key /etc/restate-tls/key.pem;
    client_max_body_size 1m;
    location / {
      proxy_pass http://127.0.0.1:8080;
      proxy_http_version 1.1;
      proxy_read_timeout 300s;
    }
  }
}
CONF
  docker run -d --name tls --restart always --network host \
    -v /etc/restate-tls:/etc/restate-tls:ro \
    -v /etc/restate-tls/nginx.conf:/etc/nginx/nginx.conf:ro \
    "${NGINX_IMAGE}"
fi
