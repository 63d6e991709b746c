-- Random 1 MiB byte ranges of a file of @SIZE@ bytes; each thread has a fixed seed, so that
-- nginx and interview-api are asked for the same sequence of ranges.
local size = @SIZE@
local chunk = 1048576
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("seed", threads)
end

function init(args)
   math.randomseed(4242 + seed)
end

function request()
   local first = math.random(0, size - chunk)
   local range = string.format("bytes=%d-%d", first, first + chunk - 1)
   return wrk.format("GET", nil, { ["Range"] = range })
end
