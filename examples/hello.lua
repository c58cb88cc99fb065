-- The smallest script: print something, compute, return a value.
-- Run it with: kosmo run examples/hello.lua
local greeting = "hello from Lua " .. _VERSION:match("%d+%.%d+")
print(greeting)

local squares = {}
for i = 1, 5 do
  squares[#squares + 1] = i * i
end
print("squares:", squares)

return {greeting = greeting, sum = 1 + 4 + 9 + 16 + 25, squares = squares}
