#!/bin/bash
# The entrypoint of the PostgreSQL stand-in (scripts/standin-image.sh stack),
# for tests only: Debian's PostgreSQL under the contract of the official
# postgres image's docker-entrypoint.sh, as far as compose/compose.yaml and
# docs/operations.md use it.
#
#   POSTGRES_PASSWORD  the superuser's password; required to initialise
#   POSTGRES_USER      the superuser's name (default postgres)
#   POSTGRES_DB        the database made at initialisation (default: the user's name)
#   PGDATA             the data folder (default /var/lib/postgresql/data)
#
# On an empty data folder: initdb as the postgres OS user (the password through
# --pwfile from a pipe, never in an argument), `listen_addresses = '*'` (from
# the image's postgresql.conf.sample), pg_hba as initdb writes it (trust on the
# socket and on loopback) plus `host all all all scram-sha-256`, and
# POSTGRES_DB created through a server listening on the socket only. A folder
# that holds a cluster (PG_VERSION) is started as it is. Either way the last
# step execs postgres, which is then PID 1 and gets the stop signal.
#
# Not supported (compose.yaml does not use them): /docker-entrypoint-initdb.d,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, the *_FILE variables, a
# container started as a user other than root or postgres.
set -Eeuo pipefail

fail() {
	printf 'postgres entrypoint: error: %s\n' "$*" >&2
	exit 1
}

# As the official image: options alone mean "postgres with these options";
# any other command runs as given.
if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi
if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

if ((EUID == 0)); then
	# The data folder may be a new volume (root's) or come from an image whose
	# postgres user has another uid: make it postgres's, mode 700 as initdb
	# and the server demand.
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	mkdir -p /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	# setpriv execs (runuser and su fork and wait), so postgres stays PID 1.
	home=$(getent passwd postgres | cut -d: -f6)
	exec env HOME="$home" USER=postgres LOGNAME=postgres \
		setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

[[ $(id -un) == postgres ]] || fail "run as root or postgres, not as $(id -un)"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	[[ -n ${POSTGRES_PASSWORD:-} ]] ||
		fail "the database is not initialised and POSTGRES_PASSWORD is not set: set it to the superuser's password"
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	echo "postgres entrypoint: initialising $PGDATA (superuser $user, database $db)"
	initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --encoding=UTF8
	printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	if [[ $db != postgres ]]; then
		# A server on the socket only, as the official image: nothing outside
		# sees it up before the database exists.
		pg_ctl --pgdata="$PGDATA" --wait --silent --options="-c listen_addresses='' -p ${PGPORT:-5432}" start
		psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
			--set=db="$db" <<<'CREATE DATABASE :"db";'
		pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
	fi
	echo "postgres entrypoint: initialised; starting the server"
fi

exec "$@"
