-- test_args.lua — ff.args: types inferred from defaults, --key value / --key=value / --flag /
-- --no-flag, errors naming the argument and the expected type, --help listing and clean exit.
local T  = require "ff_test"
local ff = require "fisherflow"

local spec = {
  steps = { 20000, "training steps" },
  lr    = { 1e-3, "learning rate" },
  ot    = { "exact_ot", "coupler name" },
  ema   = { false, "use EMA" },
  plot  = { true, "write the PNG" },
  weight_decay = { 0.5, "decoupled weight decay" },
}

T.test("defaults when nothing is given", function()
  local a = ff.args(spec, {})
  T.eq(a.steps, 20000, "steps"); T.eq(a.lr, 1e-3, "lr"); T.eq(a.ot, "exact_ot", "ot")
  T.eq(a.ema, false, "ema"); T.eq(a.plot, true, "plot")
end)

T.test("typed values in both spellings", function()
  local a = ff.args(spec, { "--steps", "300", "--lr=0.02", "--ot", "sinkhorn", "--ema", "--no-plot",
                            "--weight-decay", "1e-4" })
  T.eq(a.steps, 300, "steps"); T.eq(math.type and math.type(a.steps) or type(a.steps), "number", "type")
  T.eq(a.lr, 0.02, "lr"); T.eq(a.ot, "sinkhorn", "ot"); T.eq(a.ema, true, "ema"); T.eq(a.plot, false, "plot")
  T.eq(a.weight_decay, 1e-4, "weight_decay")
end)

T.test("booleans take an explicit value", function()
  local a = ff.args(spec, { "--ema", "false", "--plot", "0" })
  T.eq(a.ema, false, "ema"); T.eq(a.plot, false, "plot")
  a = ff.args(spec, { "--ema=yes", "--steps", "5" })
  T.eq(a.ema, true, "ema"); T.eq(a.steps, 5, "steps")
end)

T.test("a number argument accepts integers, an integer argument refuses fractions", function()
  T.eq(ff.args(spec, { "--lr", "1" }).lr, 1, "lr")
  T.raises(function() ff.args(spec, { "--steps", "1.5" }) end, "--steps expects an integer, got '1.5'")
  T.raises(function() ff.args(spec, { "--steps", "many" }) end, "--steps expects an integer, got 'many'")
  T.raises(function() ff.args(spec, { "--lr", "fast" }) end, "--lr expects a number, got 'fast'")
  T.raises(function() ff.args(spec, { "--ema=maybe" }) end, "--ema expects a boolean (true/false), got 'maybe'")
end)

T.test("unknown names, missing values and positional words are refused", function()
  T.raises(function() ff.args(spec, { "--stpes", "3" }) end,
           "unknown argument --stpes (known: ema, lr, ot, plot, steps, weight_decay)")
  T.raises(function() ff.args(spec, { "--steps" }) end, "--steps needs a value (integer)")
  T.raises(function() ff.args(spec, { "300" }) end, "unexpected argument '300'")
end)

T.test("errors point at the script line that called ff.args", function()
  local line = T.line() + 1
  local err = T.raises(function() ff.args(spec, { "--steps", "x" }) end)
  T.ok(err:find("test_args.lua:" .. line .. ":", 1, true), "error does not name line %d: %s", line, err)
end)

T.test("reading an undeclared argument is an error, a declared one is not", function()
  local a = ff.args({ out = { nil, "output", type = "string" } }, {})
  T.eq(a.out, nil, "declared without a default")
  T.raises(function() return a.outt end, "'outt' is not a declared argument")
end)

T.test("bad specs are refused", function()
  T.raises(function() ff.args({ x = { nil, "no default" } }, {}) end, "argument 'x' needs a default")
  T.raises(function() ff.args({ x = { 1, 2 } }, {}) end, "the second entry is its help text")
  T.raises(function() ff.args({ x = { 1, "h", type = "float" } }, {}) end, "type must be integer, number, string or boolean")
end)

T.test("--help prints every argument and ends the script with status 0", function()
  local text = require("fisherflow.args").help_text(spec, "x.lua")
  T.ok(text:find("usage: fisherflow run x.lua", 1, true), "usage line: %s", text)
  T.ok(text:find("--steps <integer>%s+training steps %(default: 20000%)"), "steps line: %s", text)
  T.ok(text:find("--weight-decay <number>", 1, true), "weight-decay line: %s", text)
  T.ok(text:find("--ema%s+use EMA %(default: false%)"), "ema line: %s", text)
  local saved, printed = io.stdout, {}
  io.stdout = { write = function(_, s) printed[#printed + 1] = s end, flush = function() end }
  local ok, err = pcall(ff.args, spec, { "--steps", "3", "--help" })
  io.stdout = saved
  T.ok(not ok and type(err) == "table" and err.fisherflow_exit == 0, "expected the clean-exit marker, got %s", tostring(err))
  T.ok(table.concat(printed):find("--lr <number>", 1, true), "help was not printed: %s", table.concat(printed))
end)

T.test("the runner's arguments are the default argv", function()
  local script = package.loaded["fisherflow.script"]
  T.ok(script and type(script.args) == "table", "runner did not set fisherflow.script")
  local saved = script.args
  script.args = { "--steps", "7" }
  local a = ff.args(spec)
  script.args = saved
  T.eq(a.steps, 7, "steps from the runner's argv")
end)
