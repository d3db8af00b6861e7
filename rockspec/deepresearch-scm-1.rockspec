-- Offline install from a checkout: luarocks --lua-version=5.4 make rockspec/deepresearch-scm-1.rockspec
-- lua-cjson comes from Debian (lua-cjson package) and is found at run time, so it is not a
-- rock dependency here: LuaRocks' online repository is not needed to build.
rockspec_format = "3.0"
package = "deepresearch"
version = "scm-1"
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Run deep research tasks (Extruct, Valyu) from Lua: C core on libcurl, cited reports",
  detailed = [[
deepresearch creates long-running research tasks on hosted deep-research APIs, waits on them
(one or hundreds at once, blocking or from an event loop), and renders their cited reports.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
-- libcurl (Debian: libcurl4-openssl-dev) and libcrypto (libssl-dev) are found on the
-- compiler's default paths, which include Debian's multiarch directories; LuaRocks' own
-- header lookup does not.
build = {
  type = "builtin",
  modules = {
    ["deepresearch.core"] = {
      sources = {
        "src/buffer.c", "src/client.c", "src/compat.c", "src/download.c", "src/easy.c",
        "src/engine.c", "src/handle.c", "src/hmac.c", "src/journal.c", "src/json.c", "src/module.c",
        "src/poller.c", "src/result.c", "src/spec.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "include", "src" },
      libraries = { "curl", "crypto", "m" },
    },
    ["deepresearch"] = "lua/deepresearch/init.lua",
    ["deepresearch.brief"] = "lua/deepresearch/brief.lua",
    ["deepresearch.cli"] = "lua/deepresearch/cli/init.lua",
    ["deepresearch.cli.args"] = "lua/deepresearch/cli/args.lua",
    ["deepresearch.cli.brief"] = "lua/deepresearch/cli/brief.lua",
    ["deepresearch.cli.assets"] = "lua/deepresearch/cli/assets.lua",
    ["deepresearch.cli.batch"] = "lua/deepresearch/cli/batch.lua",
    ["deepresearch.cli.checkpoint"] = "lua/deepresearch/cli/checkpoint.lua",
    ["deepresearch.checkpoint"] = "lua/deepresearch/checkpoint.lua",
    ["deepresearch.cli.discover"] = "lua/deepresearch/cli/discover.lua",
    ["deepresearch.cli.help"] = "lua/deepresearch/cli/help.lua",
    ["deepresearch.cli.input"] = "lua/deepresearch/cli/input.lua",
    ["deepresearch.cli.output"] = "lua/deepresearch/cli/output.lua",
    ["deepresearch.cli.progress"] = "lua/deepresearch/cli/progress.lua",
    ["deepresearch.cli.research"] = "lua/deepresearch/cli/research.lua",
    ["deepresearch.cli.task"] = "lua/deepresearch/cli/task.lua",
    ["deepresearch.runtime.clock"] = "lua/deepresearch/runtime/clock.lua",
    ["deepresearch.base.dates"] = "lua/deepresearch/base/dates.lua",
    ["deepresearch.providers.discovery"] = "lua/deepresearch/providers/discovery.lua",
    ["deepresearch.base.errors"] = "lua/deepresearch/base/errors.lua",
    ["deepresearch.providers.extruct"] = "lua/deepresearch/providers/extruct.lua",
    ["deepresearch.health"] = "lua/deepresearch/health.lua",
    ["deepresearch.journal"] = "lua/deepresearch/journal.lua",
    ["deepresearch.nvim.health"] = "lua/deepresearch/nvim/health.lua",
    ["deepresearch.runtime.http"] = "lua/deepresearch/runtime/http.lua",
    ["deepresearch.base.json"] = "lua/deepresearch/base/json.lua",
    ["deepresearch.runtime.poller"] = "lua/deepresearch/runtime/poller.lua",
    ["deepresearch.nvim"] = "lua/deepresearch/nvim/init.lua",
    ["deepresearch.nvim.buffer"] = "lua/deepresearch/nvim/buffer.lua",
    ["deepresearch.nvim.checkpoint"] = "lua/deepresearch/nvim/checkpoint.lua",
    ["deepresearch.nvim.commands"] = "lua/deepresearch/nvim/commands.lua",
    ["deepresearch.nvim.config"] = "lua/deepresearch/nvim/config.lua",
    ["deepresearch.nvim.descriptors"] = "lua/deepresearch/nvim/descriptors.lua",
    ["deepresearch.nvim.drivers"] = "lua/deepresearch/nvim/drivers.lua",
    ["deepresearch.nvim.jobs"] = "lua/deepresearch/nvim/jobs.lua",
    ["deepresearch.nvim.library"] = "lua/deepresearch/nvim/library.lua",
    ["deepresearch.nvim.list"] = "lua/deepresearch/nvim/list.lua",
    ["deepresearch.nvim.report"] = "lua/deepresearch/nvim/report.lua",
    ["deepresearch.nvim.respond"] = "lua/deepresearch/nvim/respond.lua",
    ["deepresearch.nvim.state"] = "lua/deepresearch/nvim/state.lua",
    ["deepresearch.providers"] = "lua/deepresearch/providers/init.lua",
    ["deepresearch.providers.limits"] = "lua/deepresearch/providers/limits.lua",
    ["deepresearch.providers.descriptor.extruct"] = "lua/deepresearch/providers/descriptor/extruct.lua",
    ["deepresearch.providers.descriptor.valyu"] = "lua/deepresearch/providers/descriptor/valyu.lua",
    ["deepresearch.providers.descriptor.gemini"] = "lua/deepresearch/providers/descriptor/gemini.lua",
    ["deepresearch.providers.descriptor.openai"] = "lua/deepresearch/providers/descriptor/openai.lua",
    ["deepresearch.providers.descriptor.responses_shared"] = "lua/deepresearch/providers/descriptor/responses_shared.lua",
    ["deepresearch.providers.descriptor.perplexity"] = "lua/deepresearch/providers/descriptor/perplexity.lua",
    ["deepresearch.report"] = "lua/deepresearch/report/init.lua",
    ["deepresearch.report.read"] = "lua/deepresearch/report/read.lua",
    ["deepresearch.result"] = "lua/deepresearch/result.lua",
    ["deepresearch.base.options"] = "lua/deepresearch/base/options.lua",
    ["deepresearch.base.policy"] = "lua/deepresearch/base/policy.lua",
    ["deepresearch.schema"] = "lua/deepresearch/schema/init.lua",
    ["deepresearch.schema.check"] = "lua/deepresearch/schema/check.lua",
    ["deepresearch.base.utf8"] = "lua/deepresearch/base/utf8.lua",
    ["deepresearch.base.validate"] = "lua/deepresearch/base/validate.lua",
    ["deepresearch.providers.valyu"] = "lua/deepresearch/providers/valyu.lua",
    ["deepresearch.providers.gemini"] = "lua/deepresearch/providers/gemini.lua",
    ["deepresearch.providers.responses"] = "lua/deepresearch/providers/responses.lua",
    ["deepresearch.providers.valyu_batch"] = "lua/deepresearch/providers/valyu_batch.lua",
    ["deepresearch.providers.valyu_hitl"] = "lua/deepresearch/providers/valyu_hitl.lua",
    ["deepresearch.providers.valyu_assets"] = "lua/deepresearch/providers/valyu_assets.lua",
    ["deepresearch.webhooks"] = "lua/deepresearch/webhooks.lua",
    ["deepresearch.runtime.wait"] = "lua/deepresearch/runtime/wait.lua",
    ["deepresearch.worker"] = "lua/deepresearch/worker/init.lua",
    ["deepresearch.worker.batch"] = "lua/deepresearch/worker/batch.lua",
    ["deepresearch.worker.checkpoint"] = "lua/deepresearch/worker/checkpoint.lua",
    ["deepresearch.worker.cli"] = "lua/deepresearch/worker/cli.lua",
    ["deepresearch.worker.flow"] = "lua/deepresearch/worker/flow.lua",
    ["deepresearch.worker.job"] = "lua/deepresearch/worker/job.lua",
    ["deepresearch.worker.reconcile"] = "lua/deepresearch/worker/reconcile.lua",
    ["deepresearch.worker.redis"] = "lua/deepresearch/worker/redis.lua",
    ["deepresearch.worker.store"] = "lua/deepresearch/worker/store.lua",
    ["deepresearch.worker.store_checkpoint"] = "lua/deepresearch/worker/store_checkpoint.lua",
  },
  install = {
    bin = {
      ["deepresearch"] = "bin/deepresearch",
      ["deepresearch-worker"] = "bin/deepresearch-worker",
    },
  },
}
