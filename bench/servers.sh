# Real servers for the benchmark suite (sourced by bench/run-suite.sh).
#
# Each server gets its own port and data directory under $SRV_DIR, listens
# on 127.0.0.1 only, and is started and stopped here, never through the
# distribution's service scripts:
#   postgres  port 55432, max_connections 200, PG_CLIENTS pgbench clients
#             (select-only, 20 transactions/s in all: nearly idle backends)
#   nginx     port 58080, NGINX_WORKERS workers
#   apache2   port 58081, mpm_prefork with APACHE_CHILDREN children
# Programs are run by absolute path. SRV_ROOTS holds the pids whose trees
# form the workload (postmaster, nginx master, apache2 parent, pgbench).

PG_CLIENTS=${PG_CLIENTS:-120}
NGINX_WORKERS=${NGINX_WORKERS:-48}
APACHE_CHILDREN=${APACHE_CHILDREN:-120}
SRV_ROOTS=()
SRV_PG_BIN=
SRV_PGBENCH_PID=

srv_log() { echo "servers: $*" >&2; }

# Counts the direct children of pid $1.
srv_children() { local n; n=$(cat /proc/"$1"/task/*/children 2>/dev/null | wc -w); echo "${n:-0}"; }

# Waits (at most $3 s) until pid $1 has at least $2 children.
srv_wait_children() {
  local pid=$1 want=$2 limit=$3 i
  for ((i = 0; i < limit * 10; i++)); do
    [ "$(srv_children "$pid")" -ge "$want" ] && return 0
    sleep 0.1
  done
  srv_log "pid $pid has $(srv_children "$pid") children, wanted $want within ${limit}s"
  return 1
}

srv_as_postgres() { /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

start_postgres() {
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  SRV_PG_BIN=/usr/lib/postgresql/$ver/bin
  local d=$SRV_DIR/pg
  mkdir -p "$d" && chown postgres:postgres "$d" && chmod 700 "$d"
  srv_as_postgres "$SRV_PG_BIN/initdb" -D "$d/data" -A trust -U postgres --no-sync >"$SRV_DIR/pg-initdb.log" 2>&1
  srv_as_postgres "$SRV_PG_BIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 start \
    -o "-p 55432 -k $d -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c shared_buffers=32MB" \
    >"$SRV_DIR/pg-start.log" 2>&1
  local pm
  pm=$(head -1 "$d/data/postmaster.pid")
  SRV_ROOTS+=("$pm")
  srv_as_postgres "$SRV_PG_BIN/pgbench" -h 127.0.0.1 -p 55432 -U postgres -i -s 1 -q postgres \
    >"$SRV_DIR/pgbench-init.log" 2>&1
  # Bounded: 30 minutes at most, stopped by stop_servers long before.
  # setpriv execs pgbench: $! is pgbench itself.
  /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "$SRV_PG_BIN/pgbench" -h 127.0.0.1 -p 55432 -U postgres -n -S \
    -c "$PG_CLIENTS" -j 2 -R 20 -T 1800 postgres >"$SRV_DIR/pgbench.log" 2>&1 &
  SRV_PGBENCH_PID=$!
  SRV_ROOTS+=("$SRV_PGBENCH_PID")
  # Postmaster children: the backends plus its ~5 auxiliary processes.
  srv_wait_children "$pm" $((PG_CLIENTS + 5)) 120
  srv_log "postgres $ver: postmaster $pm, $(srv_children "$pm") children, pgbench $SRV_PGBENCH_PID"
}

start_nginx() {
  local d=$SRV_DIR/nginx
  mkdir -p "$d/www" "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
user www-data;
worker_processes $NGINX_WORKERS;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server { listen 127.0.0.1:58080; root $d/www; }
}
EOF
  /usr/sbin/nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" 2>"$SRV_DIR/nginx-start.log"
  local i master=
  for ((i = 0; i < 100; i++)); do
    [ -s "$d/nginx.pid" ] && master=$(cat "$d/nginx.pid") && break
    sleep 0.1
  done
  [ -n "$master" ] || { srv_log "nginx did not write its pid file"; return 1; }
  SRV_ROOTS+=("$master")
  srv_wait_children "$master" "$NGINX_WORKERS" 60
  srv_log "nginx: master $master, $(srv_children "$master") children"
}

start_apache() {
  local d=$SRV_DIR/apache2 m=/usr/lib/apache2/modules
  mkdir -p "$d/www"
  cat >"$d/apache2.conf" <<EOF
ServerRoot $d
DefaultRuntimeDir $d
PidFile $d/apache2.pid
Mutex file:$d default
LoadModule mpm_prefork_module $m/mod_mpm_prefork.so
LoadModule authz_core_module $m/mod_authz_core.so
Listen 127.0.0.1:58081
ServerName localhost
User www-data
Group www-data
ErrorLog $d/error.log
DocumentRoot $d/www
ServerLimit $((APACHE_CHILDREN + 50))
MaxRequestWorkers $((APACHE_CHILDREN + 50))
StartServers $APACHE_CHILDREN
MinSpareServers $APACHE_CHILDREN
MaxSpareServers $((APACHE_CHILDREN + 50))
EOF
  /usr/sbin/apache2 -d "$d" -f "$d/apache2.conf" -k start 2>"$SRV_DIR/apache2-start.log"
  local i parent=
  for ((i = 0; i < 100; i++)); do
    [ -s "$d/apache2.pid" ] && parent=$(cat "$d/apache2.pid") && break
    sleep 0.1
  done
  [ -n "$parent" ] || { srv_log "apache2 did not write its pid file"; return 1; }
  SRV_ROOTS+=("$parent")
  srv_wait_children "$parent" "$APACHE_CHILDREN" 120
  srv_log "apache2 prefork: parent $parent, $(srv_children "$parent") children"
}

# Stops a daemon by its pid file: SIGTERM, then SIGKILL after 10 s.
srv_stop_pidfile() {
  local f=$1 pid i
  [ -s "$f" ] || return 0
  pid=$(head -1 "$f")
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_servers() {
  [ -n "${SRV_DIR:-}" ] && [ -d "$SRV_DIR" ] || return 0
  if [ -n "$SRV_PGBENCH_PID" ]; then
    kill -TERM "$SRV_PGBENCH_PID" 2>/dev/null || true
    wait "$SRV_PGBENCH_PID" 2>/dev/null || true
  fi
  if [ -s "$SRV_DIR/pg/data/postmaster.pid" ]; then
    srv_as_postgres "$SRV_PG_BIN/pg_ctl" -D "$SRV_DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 ||
      srv_stop_pidfile "$SRV_DIR/pg/data/postmaster.pid"
  fi
  srv_stop_pidfile "$SRV_DIR/nginx/nginx.pid"
  srv_stop_pidfile "$SRV_DIR/apache2/apache2.pid"
  sleep 0.5
  rm -rf "$SRV_DIR"
  SRV_ROOTS=()
  srv_log "stopped and removed"
}

start_servers() {
  SRV_DIR=$(mktemp -d /tmp/kcmp-bench-servers.XXXXXX)
  chmod 755 "$SRV_DIR"
  start_postgres && start_nginx && start_apache
}
