#!/usr/bin/env bash
# Installs and starts what the tests need on Debian 12: PostgreSQL, Redis, dnsmasq, iproute2/iptables,
# Chromium. Idempotent: installs only what is missing, starts only what is not running.
set -euo pipefail

need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v chromium >/dev/null || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)  # the reference the http prober's timings are compared with
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)  # the peer make bench compares agents with
# Reference tools the ping, traceroute, mtr and dns tests compare with, and a DNS-over-TLS server.
command -v ping >/dev/null || need+=(iputils-ping)
command -v traceroute >/dev/null || need+=(traceroute)
command -v mtr >/dev/null || need+=(mtr-tiny)
command -v dig >/dev/null || need+=(dnsutils)
command -v unbound >/dev/null || need+=(unbound)
command -v nmap >/dev/null || need+=(nmap)  # the udp prober names port states as `nmap -sU` does
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  echo "setup: starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 100); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 0.1; done
  pg_isready -h "$PGHOST" -p "$PGPORT"
fi
# Tests connect as postgres over TCP without a password (trust on loopback), as on the CI machines.
if ! psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atqc 'show hba_file'")
  echo "setup: allowing trust auth on loopback in $hba"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  su postgres -c "psql -Atqc 'select pg_reload_conf()'" >/dev/null
fi

REDIS_PORT=${REDIS_PORT:-6379}
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "setup: starting Redis on $REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
  for _ in $(seq 1 100); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
fi

# Unprivileged ICMP (datagram) sockets for ping without raw-socket privileges.
sysctl -qw net.ipv4.ping_group_range="0 2147483647" 2>/dev/null || true
echo "setup: PostgreSQL, Redis and test tools ready"
