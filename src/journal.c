/* The journal's durable writes (lua/deepresearch/journal.lua): a line appended whole and
 * fsynced, so a crash right after a create leaves the record of it on disk, and a private
 * directory to keep the file in. Failures of the outside world return nil, message. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "compat.h"

static int dr_fail(lua_State *L, const char *what, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  return 2;
}

/* core.append_line(path, line): appends line and a newline with one O_APPEND write (several
 * writers never interleave inside a line), fsyncs and closes. A new file is created 0600: it
 * names tasks someone paid for. Returns true, or nil, message. */
static int dr_append_line(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *line = luaL_checklstring(L, 2, &len);
  luaL_Buffer b;
  const char *data;
  size_t left;
  int fd, err = 0;
  struct stat st;
  char last = '\n';
  if (memchr(line, '\n', len) != NULL)
    return luaL_argerror(L, 2, "a journal line holds no newline");
  fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return dr_fail(L, "cannot open", path, errno);
  /* A torn last line (a crash mid-write) is ended first, so this line stays readable. */
  if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
    last = '\n';
  /* One buffer, one write: a line written in two pieces could be split by another writer. */
  luaL_buffinit(L, &b);
  if (last != '\n')
    luaL_addchar(&b, '\n');
  luaL_addlstring(&b, line, len);
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  data = lua_tolstring(L, -1, &left);
  while (left > 0) {
    ssize_t n = write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      break;
    }
    data += n;
    left -= (size_t)n;
  }
  if (err == 0 && fsync(fd) != 0)
    err = errno;
  if (close(fd) != 0 && err == 0)
    err = errno;
  if (err != 0)
    return dr_fail(L, "cannot write", path, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.mkdir_private(path): creates path and its missing parents with mode 0700 (an existing
 * directory is left as it is). Returns true, or nil, message. */
static int dr_mkdir_private(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  char *copy;
  if (len == 0)
    return luaL_argerror(L, 1, "empty path");
  copy = (char *)lua_newuserdata(L, len + 1); /* freed by the collector, whatever happens */
  memcpy(copy, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (copy[i] != '/' && copy[i] != '\0')
      continue;
    copy[i] = '\0';
    if (mkdir(copy, 0700) != 0 && errno != EEXIST)
      return dr_fail(L, "cannot create directory", copy, errno);
    if (i < len)
      copy[i] = '/';
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg dr_journal_functions[] = {
    {"append_line", dr_append_line}, {"mkdir_private", dr_mkdir_private}, {NULL, NULL}};

/* Adds append_line and mkdir_private to the module table on top of the stack. */
void dr_journal_open(lua_State *L);
void dr_journal_open(lua_State *L) {
  dr_setfuncs(L, dr_journal_functions, 0);
}
