--[[----------------------------------------------------------------------------
files.lua -- small file helpers the specs share (Lua 5.1 and 5.4, POSIX shell).

  files.quote(s)          s quoted for sh
  files.tempFolder()      a new empty folder under the system temp folder
  files.remove(path)      rm -rf
  files.read(path)        the bytes, or nil when it cannot be opened
  files.write(path, s)    returns path
  files.exists(path)
  files.copy(from, to)
  files.list(folder)      the names in folder (with dot files), sorted
------------------------------------------------------------------------------]]

local files = {}

function files.quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

function files.tempFolder()
	local path = os.tmpname()
	os.remove(path)
	assert(os.execute('mkdir -p ' .. files.quote(path)))
	return path
end

function files.remove(path)
	os.execute('rm -rf ' .. files.quote(path))
end

function files.read(path)
	local f = io.open(path, 'rb')
	if not f then
		return nil
	end
	local data = f:read('*a')
	f:close()
	return data
end

function files.write(path, text)
	local f = assert(io.open(path, 'wb'))
	f:write(text)
	f:close()
	return path
end

function files.exists(path)
	local f = io.open(path, 'rb')
	if f then
		f:close()
	end
	return f ~= nil
end

function files.copy(from, to)
	files.write(to, assert(files.read(from), 'cannot read ' .. from))
end

function files.list(folder)
	local pipe = io.popen('ls -A ' .. files.quote(folder))
	local names = {}
	for name in pipe:lines() do
		names[#names + 1] = name
	end
	pipe:close()
	table.sort(names)
	return names
end

return files
