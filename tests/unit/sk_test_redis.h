/* Shared by the unit tests that need a real redis-server (test_redis.c,
 * test_node.c): each program starts its own on a free loopback port in its group
 * setup, every case starts with it running, and the group teardown kills it by PID
 * and removes its directory. Include once, after sk_test.h. */
#ifndef SK_TEST_REDIS_H
#define SK_TEST_REDIS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>

/* ---- the redis-server ---- */

static struct {
	pid_t pid;
	int port;
	char dir[PATH_MAX];
	char addr[64];
	char sock[PATH_MAX + 8];
} srv;

static int free_port(void)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A command on a fresh synchronous connection (1 s timeouts); NULL on failure. */
static redisReply *srv_cmd(const char *fmt, ...)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
	redisReply *rep = NULL;
	va_list ap;

	if (!c)
		return NULL;
	if (!c->err && redisSetTimeout(c, tv) == REDIS_OK) {
		va_start(ap, fmt);
		rep = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	redisFree(c);
	return rep;
}

/* An integer reply of fmt with one %s argument; fails the case otherwise. */
static inline long long srv_int(const char *fmt, const char *arg)
{
	redisReply *r = srv_cmd(fmt, arg);
	long long v;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static bool srv_pong(void)
{
	redisReply *rep = srv_cmd("PING");
	bool ok = rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG");

	if (rep)
		freeReplyObject(rep);
	return ok;
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static int srv_start(void)
{
	char logf[PATH_MAX + 16];
	char port[16];
	uint64_t until;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", srv.port);
	snprintf(logf, sizeof(logf), "%s/redis.log", srv.dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port,
		       "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", srv.dir,
		       "--logfile", logf, "--unixsocket", srv.sock, "--unixsocketperm", "700",
		       (char *)NULL);
		_exit(127);
	}
	srv.pid = pid;
	/* Bounded wait for PING to answer. */
	until = now_ms() + 10000;
	while (now_ms() < until) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			srv.pid = 0;
			return -1;
		}
		if (srv_pong())
			return 0;
		usleep(20000);
	}
	return -1;
}

/* SIGKILL (works on a stopped server too) and reap. */
static void srv_kill(void)
{
	if (srv.pid <= 0)
		return;
	kill(srv.pid, SIGKILL);
	waitpid(srv.pid, NULL, 0);
	srv.pid = 0;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Stop or resume the server and wait (bounded) until the kernel agrees. */
static void srv_signal(int sig)
{
	uint64_t until = now_ms() + 3000;

	assert_int_equal(kill(srv.pid, sig), 0);
	while (now_ms() < until) {
		char s = proc_state(srv.pid);

		if (sig == SIGSTOP ? s == 'T' : s != 'T')
			return;
		usleep(1000);
	}
	fail_msg("redis-server did not change state after signal %d", sig);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX * 2];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int group_setup(void **state)
{
	const char *base = getenv("SKEIN_TEST_TMP");

	(void)state;
	signal(SIGPIPE, SIG_IGN); /* as the daemons do: hiredis writes with write(2) */
	if (base && *base) {
		mkdir(base, 0700);
		snprintf(srv.dir, sizeof(srv.dir), "%s/redis-XXXXXX", base);
	} else {
		snprintf(srv.dir, sizeof(srv.dir), "/tmp/skein-test-redis-XXXXXX");
	}
	if (!mkdtemp(srv.dir))
		return -1;
	snprintf(srv.sock, sizeof(srv.sock), "%s/r.sock", srv.dir);
	srv.port = free_port();
	if (srv.port <= 0)
		return -1;
	snprintf(srv.addr, sizeof(srv.addr), "127.0.0.1:%d", srv.port);
	return srv_start();
}

static int group_teardown(void **state)
{
	(void)state;
	srv_kill();
	rm_dir(srv.dir);
	return 0;
}

/* Every case starts with a running, answering server. */
static int case_setup(void **state)
{
	if (srv.pid > 0 && proc_state(srv.pid) == 'T')
		kill(srv.pid, SIGCONT);
	if (!srv_pong()) {
		srv_kill();
		if (srv_start())
			return -1;
	}
	return leak_setup(state);
}

#endif
