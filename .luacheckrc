std = "min"
max_line_length = 100
-- Help texts and Redis scripts held in long strings: their lines are what is printed or sent.
max_string_line_length = 120
files["spec/"] = { std = "+busted" }
files["lua/deepresearch/nvim/"] = { globals = { "vim" } }
files["plugin/"] = { globals = { "vim" } }
exclude_files = { "build/", ".rocks/", "node_modules/" }
