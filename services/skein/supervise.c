/* Child processes of the node runner: start, restart with backoff, ordered stop.
 *
 * Children run in their own process group, so a Ctrl-C on the terminal reaches only
 * the runner, which then stops the roles first and the embedded Redis last. They also
 * get PR_SET_PDEATHSIG: if the runner is killed outright, they are told to stop too,
 * so no orphan is left behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include "skein/sk_log.h"
#include "skein.h"

SK_LOG_MODULE("skein");

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000 /* a child that ran this long restarts at the minimum backoff */

static void restart_cb(uv_timer_t *t)
{
	struct child *c = t->data;

	if (!c->r->stopping)
		supervise_start(c->r, c);
}

int supervise_start(struct runner *r, struct child *c)
{
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid < 0) {
		SK_ERROR("fork for %s: %s", c->name, strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent) /* the runner died before prctl took effect */
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execvp(c->argv[0], c->argv);
		fprintf(stderr, "skein: cannot run %s: %s\n", c->argv[0], strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	c->started = uv_now(r->loop);
	SK_INFO("started %s (pid %d)", c->name, (int)pid);
	return 0;
}

static bool all_roles_down(struct runner *r)
{
	for (size_t i = 0; i < r->nkids; i++)
		if (!r->kids[i].is_redis && r->kids[i].pid)
			return false;
	return true;
}

static bool all_down(struct runner *r)
{
	for (size_t i = 0; i < r->nkids; i++)
		if (r->kids[i].pid)
			return false;
	return true;
}

static void close_all(struct runner *r)
{
	for (int i = 0; i < 3; i++)
		if (!uv_is_closing((uv_handle_t *)&r->sig[i]))
			uv_close((uv_handle_t *)&r->sig[i], NULL);
	if (!uv_is_closing((uv_handle_t *)&r->kill_timer))
		uv_close((uv_handle_t *)&r->kill_timer, NULL);
	for (size_t i = 0; i < r->nkids; i++)
		if (!uv_is_closing((uv_handle_t *)&r->kids[i].restart))
			uv_close((uv_handle_t *)&r->kids[i].restart, NULL);
}

static void signal_redis(struct runner *r, int sig)
{
	for (size_t i = 0; i < r->nkids; i++)
		if (r->kids[i].is_redis && r->kids[i].pid)
			kill(r->kids[i].pid, sig);
}

static void reaped(struct runner *r, struct child *c, int status)
{
	uint64_t ran = uv_now(r->loop) - c->started;
	char how[64];

	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	else
		snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
	c->pid = 0;
	if (r->stopping) {
		SK_INFO("%s stopped (%s)", c->name, how);
		if (all_roles_down(r))
			signal_redis(r, SIGTERM); /* roles first, the shared state last */
		if (all_down(r))
			close_all(r);
		return;
	}
	c->backoff = ran >= STABLE_MS || !c->backoff ? BACKOFF_MIN_MS
		     : c->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff * 2;
	c->restarts++;
	SK_ERROR("%s died (%s) after %llu ms; restarting in %llu ms (restart #%u)", c->name,
		 how, (unsigned long long)ran, (unsigned long long)c->backoff, c->restarts);
	uv_timer_start(&c->restart, restart_cb, c->backoff, 0);
}

static void on_sigchld(struct runner *r)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (size_t i = 0; i < r->nkids; i++)
			if (r->kids[i].pid == pid)
				reaped(r, &r->kids[i], status);
}

static void kill_timeout(uv_timer_t *t)
{
	struct runner *r = t->data;

	for (size_t i = 0; i < r->nkids; i++)
		if (r->kids[i].pid) {
			SK_WARN("%s did not stop in time: killing it", r->kids[i].name);
			kill(r->kids[i].pid, SIGKILL);
		}
}

void supervise_stop_all(struct runner *r)
{
	if (r->stopping) {
		/* Second Ctrl-C: the roles' own second signal means "exit now". */
		for (size_t i = 0; i < r->nkids; i++)
			if (r->kids[i].pid)
				kill(r->kids[i].pid, SIGTERM);
		return;
	}
	r->stopping = true;
	SK_NOTICE("stopping: draining the roles, then redis");
	for (size_t i = 0; i < r->nkids; i++) {
		uv_timer_stop(&r->kids[i].restart);
		if (!r->kids[i].is_redis && r->kids[i].pid)
			kill(r->kids[i].pid, SIGTERM);
	}
	if (all_roles_down(r))
		signal_redis(r, SIGTERM);
	if (all_down(r)) {
		close_all(r);
		return;
	}
	uv_timer_start(&r->kill_timer, kill_timeout, r->cluster.drain_timeout + 5000, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct runner *r = s->data;

	if (signum == SIGCHLD)
		on_sigchld(r);
	else
		supervise_stop_all(r);
}

int supervise_init(struct runner *r)
{
	static const int sigs[3] = {SIGCHLD, SIGINT, SIGTERM};

	for (int i = 0; i < 3; i++) {
		uv_signal_init(r->loop, &r->sig[i]);
		r->sig[i].data = r;
		uv_signal_start(&r->sig[i], on_signal, sigs[i]);
	}
	uv_timer_init(r->loop, &r->kill_timer);
	r->kill_timer.data = r;
	uv_unref((uv_handle_t *)&r->kill_timer);
	for (size_t i = 0; i < r->nkids; i++) {
		uv_timer_init(r->loop, &r->kids[i].restart);
		r->kids[i].restart.data = &r->kids[i];
		r->kids[i].r = r;
	}
	return 0;
}

int wait_redis(const char *addr, int ms)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	int port;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	port = atoi(colon + 1);
	for (int waited = 0; waited < ms; waited += 50) {
		struct timeval tv = {0, 200000};
		redisContext *c = redisConnectWithTimeout(host, port, tv);

		if (c && !c->err) {
			redisReply *rep = redisCommand(c, "PING");
			bool ok = rep && rep->type == REDIS_REPLY_STATUS;

			if (rep)
				freeReplyObject(rep);
			redisFree(c);
			if (ok)
				return 0;
		} else if (c) {
			redisFree(c);
		}
		usleep(50000);
	}
	return -1;
}
