--[[----------------------------------------------------------------------------
json.lua -- the small JSON codec both truepix bridges use to talk to the daemon.

Pure Lua, runs unchanged on Lua 5.1 (Lightroom Classic) and Lua 5.4 (darktable).

  json.encode(value)  -> string          tables with keys 1..n become arrays,
                                         other tables objects; json.null is null
  json.decode(text)   -> value | nil, err  objects become tables, arrays become
                                         sequences, null becomes json.null
------------------------------------------------------------------------------]]

local json = {}

-- A unique value for JSON null, so that a decoded {"error": null} keeps its key.
json.null = setmetatable({}, { __tostring = function() return "null" end })

local escapes = {
	['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
	['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function encodeString(s)
	return '"' .. s:gsub('[%c"\\]', function(c)
		return escapes[c] or string.format('\\u%04x', c:byte())
	end) .. '"'
end

local function isArray(t)
	local n = 0
	for k in pairs(t) do
		if type(k) ~= 'number' or k < 1 or k % 1 ~= 0 then
			return false
		end
		n = n + 1
	end
	for i = 1, n do
		if t[i] == nil then
			return false
		end
	end
	return true, n
end

local encodeValue

local function encodeTable(t, seen)
	if seen[t] then
		error('json.encode: a table contains itself', 0)
	end
	seen[t] = true
	local parts = {}
	local array, n = isArray(t)
	local out
	if array and (n > 0 or getmetatable(t) ~= json.object) then
		for i = 1, n do
			parts[i] = encodeValue(t[i], seen)
		end
		out = '[' .. table.concat(parts, ',') .. ']'
	else
		local keys = {}
		for k in pairs(t) do
			if type(k) ~= 'string' then
				error('json.encode: object keys must be strings, got ' .. type(k), 0)
			end
			keys[#keys + 1] = k
		end
		table.sort(keys)
		for i, k in ipairs(keys) do
			parts[i] = encodeString(k) .. ':' .. encodeValue(t[k], seen)
		end
		out = '{' .. table.concat(parts, ',') .. '}'
	end
	seen[t] = nil
	return out
end

encodeValue = function(v, seen)
	local kind = type(v)
	if v == nil or v == json.null then
		return 'null'
	elseif kind == 'boolean' then
		return tostring(v)
	elseif kind == 'number' then
		if v ~= v or v == math.huge or v == -math.huge then
			error('json.encode: cannot encode ' .. tostring(v), 0)
		end
		if v % 1 == 0 and v > -2^53 and v < 2^53 then
			return string.format('%d', v)
		end
		return string.format('%.17g', v)
	elseif kind == 'string' then
		return encodeString(v)
	elseif kind == 'table' then
		return encodeTable(v, seen)
	end
	error('json.encode: cannot encode a ' .. kind, 0)
end

-- Metatable marking an empty table that must encode as {} rather than [].
json.object = {}

function json.encode(value)
	return encodeValue(value, {})
end

-- Decoding ------------------------------------------------------------------

local function utf8Char(code)
	if code < 0x80 then
		return string.char(code)
	elseif code < 0x800 then
		return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
	elseif code < 0x10000 then
		return string.char(0xE0 + math.floor(code / 0x1000), 0x80 + math.floor(code / 0x40) % 0x40,
			0x80 + code % 0x40)
	end
	return string.char(0xF0 + math.floor(code / 0x40000), 0x80 + math.floor(code / 0x1000) % 0x40,
		0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
end

local unescapes = { b = '\b', f = '\f', n = '\n', r = '\r', t = '\t', ['"'] = '"', ['\\'] = '\\', ['/'] = '/' }

local Decoder = {}
Decoder.__index = Decoder

function Decoder:fail(what)
	error({ json = ('%s at character %d'):format(what, self.pos) }, 0)
end

function Decoder:skip()
	self.pos = self.text:find('[^ \t\r\n]', self.pos) or #self.text + 1
end

function Decoder:string()
	local text, pos, buf = self.text, self.pos + 1, {}
	while true do
		local stop = text:find('["\\%c]', pos)
		if not stop then
			self.pos = #text + 1
			self:fail('unterminated string')
		end
		buf[#buf + 1] = text:sub(pos, stop - 1)
		local c = text:sub(stop, stop)
		if c == '"' then
			self.pos = stop + 1
			return table.concat(buf)
		elseif c == '\\' then
			local e = text:sub(stop + 1, stop + 1)
			if e == 'u' then
				local hex = text:match('^%x%x%x%x', stop + 2)
				if not hex then
					self.pos = stop
					self:fail('bad \\u escape')
				end
				local code = tonumber(hex, 16)
				pos = stop + 6
				if code >= 0xD800 and code <= 0xDBFF then
					local low = text:match('^\\u(%x%x%x%x)', pos)
					local lowCode = low and tonumber(low, 16)
					if lowCode and lowCode >= 0xDC00 and lowCode <= 0xDFFF then
						code = 0x10000 + (code - 0xD800) * 0x400 + (lowCode - 0xDC00)
						pos = pos + 6
					end
				end
				buf[#buf + 1] = utf8Char(code)
			elseif unescapes[e] then
				buf[#buf + 1] = unescapes[e]
				pos = stop + 2
			else
				self.pos = stop
				self:fail('bad escape')
			end
		else
			self.pos = stop
			self:fail('control character in string')
		end
	end
end

function Decoder:value()
	self:skip()
	local text, pos = self.text, self.pos
	local c = text:sub(pos, pos)
	if c == '{' then
		local obj = {}
		self.pos = pos + 1
		self:skip()
		if text:sub(self.pos, self.pos) == '}' then
			self.pos = self.pos + 1
			return setmetatable(obj, json.object)
		end
		while true do
			self:skip()
			if text:sub(self.pos, self.pos) ~= '"' then
				self:fail('expected a key')
			end
			local key = self:string()
			self:skip()
			if text:sub(self.pos, self.pos) ~= ':' then
				self:fail("expected ':'")
			end
			self.pos = self.pos + 1
			obj[key] = self:value()
			self:skip()
			local sep = text:sub(self.pos, self.pos)
			self.pos = self.pos + 1
			if sep == '}' then
				return obj
			elseif sep ~= ',' then
				self.pos = self.pos - 1
				self:fail("expected ',' or '}'")
			end
		end
	elseif c == '[' then
		local arr, n = {}, 0
		self.pos = pos + 1
		self:skip()
		if text:sub(self.pos, self.pos) == ']' then
			self.pos = self.pos + 1
			return arr
		end
		while true do
			n = n + 1
			arr[n] = self:value()
			self:skip()
			local sep = text:sub(self.pos, self.pos)
			self.pos = self.pos + 1
			if sep == ']' then
				return arr
			elseif sep ~= ',' then
				self.pos = self.pos - 1
				self:fail("expected ',' or ']'")
			end
		end
	elseif c == '"' then
		return self:string()
	end
	local number = text:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
	if number and number ~= '' and number ~= '-' then
		local v = tonumber(number)
		if v == nil then
			self:fail('bad number')
		end
		self.pos = pos + #number
		return v
	end
	for word, v in pairs({ ['true'] = true, ['false'] = false, ['null'] = json.null }) do
		if text:sub(pos, pos + #word - 1) == word then
			self.pos = pos + #word
			return v
		end
	end
	self:fail(pos > #text and 'unexpected end of input' or 'unexpected character')
end

function json.decode(text)
	if type(text) ~= 'string' then
		return nil, 'expected a string to decode, got ' .. type(text)
	end
	local decoder = setmetatable({ text = text, pos = 1 }, Decoder)
	local ok, result = pcall(function()
		local v = decoder:value()
		decoder:skip()
		if decoder.pos <= #text then
			decoder:fail('trailing characters')
		end
		return v
	end)
	if ok then
		return result
	end
	if type(result) == 'table' and result.json then
		return nil, result.json
	end
	error(result, 0)
end

return json
