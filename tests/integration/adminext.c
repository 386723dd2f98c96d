/* tests/integration/adminext.c: run admin console commands over the extended
 * query protocol, as drivers that use it for everything do.
 *
 *   adminext CONNINFO SQL...
 *
 * Each SQL runs twice: with PQexecParams (Parse, Bind, Describe portal,
 * Execute, Sync), then with PQprepare + PQdescribePrepared + PQexecPrepared
 * (a named statement, Describe statement). Each result is printed as its
 * column names joined by '|', then its rows, or "ERROR <SQLSTATE> <message>";
 * the two runs' outputs are separated by a line "--". Exit 0, 2 when the
 * connection failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static void show(PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		printf("ERROR %s %s\n", state ? state : "none", msg ? msg : PQresultErrorMessage(r));
		return;
	}
	int nf = PQnfields(r);
	for (int f = 0; f < nf; f++)
		printf("%s%s", f ? "|" : "", PQfname(r, f));
	printf("%s", nf ? "\n" : "");
	for (int i = 0; i < PQntuples(r); i++) {
		for (int f = 0; f < nf; f++)
			printf("%s%s", f ? "|" : "", PQgetisnull(r, i, f) ? "" : PQgetvalue(r, i, f));
		printf("\n");
	}
	printf("(%s)\n", PQcmdStatus(r));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: adminext CONNINFO SQL...\n");
		return 1;
	}
	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("ERROR none %s", PQerrorMessage(c));
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		PGresult *r = PQexecParams(c, argv[i], 0, NULL, NULL, NULL, NULL, 0);
		show(r);
		PQclear(r);
		printf("--\n");
		char name[32];
		snprintf(name, sizeof name, "s%d", i);
		r = PQprepare(c, name, argv[i], 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			show(r);
			PQclear(r);
			continue;
		}
		PQclear(r);
		r = PQdescribePrepared(c, name);
		printf("described %d columns\n", PQnfields(r));
		PQclear(r);
		r = PQexecPrepared(c, name, 0, NULL, NULL, NULL, 0);
		show(r);
		PQclear(r);
	}
	PQfinish(c);
	return 0;
}
