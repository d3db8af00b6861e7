-- Frames between the editor and its curl helper process (transport_helper.lua): a header line of
-- space-separated fields whose last field is the length of the payload that follows it.
--   editor -> helper  "R id max_out len\n" + curl's config (the request, its key among it)
--   helper -> editor  "P id pid 0\n"  "E id len\n" + why it did not start
--                     "D id code signal killed outlen len\n" + stdout .. stderr
local M = {}

--- A feed function for a pipe's data: calls on_frame(fields, payload) for each whole frame.
-- A payload arriving in many chunks is joined once, when it is complete.
function M.reader(on_frame)
  local chunks, size, head, need = {}, 0, nil, 0
  return function(data)
    chunks[#chunks + 1] = data
    size = size + #data
    while true do
      if not head then
        local s = table.concat(chunks)
        local nl = s:find("\n", 1, true)
        if not nl then
          chunks, size = { s }, #s
          return
        end
        head = {}
        for f in s:sub(1, nl - 1):gmatch("%S+") do head[#head + 1] = f end
        need = tonumber(head[#head]) or 0
        s = s:sub(nl + 1)
        chunks, size = { s }, #s
      end
      if size < need then return end
      local s = table.concat(chunks)
      local fields, payload = head, s:sub(1, need)
      s = s:sub(need + 1)
      head, chunks, size = nil, { s }, #s
      on_frame(fields, payload)
    end
  end
end

return M
