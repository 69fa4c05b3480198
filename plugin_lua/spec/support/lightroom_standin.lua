--[[----------------------------------------------------------------------------
lightroom_standin.lua -- stand-ins for the Lightroom SDK modules the truepix
plug-in imports, for busted specs under plain lua5.1.

  local lr = require 'support.lightroom_standin'
  lr.install()              -- fresh globals (import, _PLUGIN, WIN_ENV...) and modules
  lr.http.handler = fn      -- fn(method, url, body, headers) -> body, {status=...}
  lr.useRealHttp()          -- LrHttp through LuaSocket: real requests to 127.0.0.1
  lr.calls                  -- every recorded call, in order: {what=..., ...}
  lr.dialogs, lr.catalog, lr.prefs, lr.scopes, lr.sleeps

Photos: lr.photo{path=..., fileFormat='RAW', rating=3, label='Red', pickStatus=1,
keywords={...}} -- setRawMetadata/addKeyword raise outside withWriteAccessDo,
just as Lightroom does, so a spec notices a missing write-access block.
------------------------------------------------------------------------------]]

local lr = {}

local PLUGIN_DIR = (debug.getinfo(1, 'S').source:match('^@(.*)spec/support/') or './') .. 'truepix.lrplugin'
package.path = PLUGIN_DIR .. '/?.lua;' .. package.path

local function record(entry)
	lr.calls[#lr.calls + 1] = entry
	return entry
end

function lr.find(what)
	local found = {}
	for _, call in ipairs(lr.calls) do
		if call.what == what then
			found[#found + 1] = call
		end
	end
	return found
end

-- Catalog and photos -------------------------------------------------------

local Photo = {}
Photo.__index = Photo

function lr.photo(fields)
	local photo = setmetatable({ meta = {}, keywords = {} }, Photo)
	for k, v in pairs(fields) do
		if k == 'keywords' then
			for _, name in ipairs(v) do
				photo.keywords[#photo.keywords + 1] = { name = name }
			end
		else
			photo.meta[k] = v
		end
	end
	photo.meta.fileFormat = photo.meta.fileFormat or 'RAW'
	photo.meta.rating = photo.meta.rating or 0
	photo.meta.pickStatus = photo.meta.pickStatus or 0
	return photo
end

function Photo:getRawMetadata(key)
	if key == 'keywords' then
		return self.keywords
	end
	if key == 'label' then
		error('getRawMetadata has no "label"; Lightroom has getFormattedMetadata("label")', 2)
	end
	return self.meta[key]
end

function Photo:getFormattedMetadata(key)
	if key == 'fileName' then
		return (self.meta.path or ''):match('[^/\\]+$')
	end
	if key == 'label' then
		return self.meta.label or ''
	end
	return self.meta[key]
end

local function assertWriteAccess(what)
	if not lr.catalog.writeAccess then
		error(what .. ': this call needs catalog:withWriteAccessDo', 3)
	end
end

function Photo:setRawMetadata(key, value)
	assertWriteAccess('LrPhoto:setRawMetadata')
	record { what = 'setRawMetadata', photo = self, key = key, value = value }
	self.meta[key] = value
end

function Photo:addKeyword(keyword)
	assertWriteAccess('LrPhoto:addKeyword')
	record { what = 'addKeyword', photo = self, keyword = keyword }
	self.keywords[#self.keywords + 1] = keyword
end

local Catalog = {}
Catalog.__index = Catalog

function Catalog:getTargetPhotos()
	return self.targets
end

function Catalog:findPhotoByPath(path)
	for _, photo in ipairs(self.photos) do
		if photo.meta.path == path then
			return photo
		end
	end
	return nil
end

function Catalog:addPhoto(path, stackWith, position)
	assertWriteAccess('LrCatalog:addPhoto')
	local f = io.open(path, 'rb')
	if not f then
		error('addPhoto: no file at ' .. tostring(path), 2)
	end
	f:close()
	if self:findPhotoByPath(path) then
		error('addPhoto: the photo is already in the catalog: ' .. path, 2)
	end
	local photo = lr.photo { path = path, fileFormat = 'TIFF' }
	photo.stackedWith, photo.stackPosition = stackWith, position
	self.photos[#self.photos + 1] = photo
	record { what = 'addPhoto', path = path, stackWith = stackWith, position = position, photo = photo }
	return photo
end

function Catalog:withWriteAccessDo(name, fn)
	record { what = 'withWriteAccessDo', name = name }
	self.writeAccess = true
	local ok, err = pcall(fn)
	self.writeAccess = false
	if not ok then
		error(err, 0)
	end
end

-- Progress scopes ------------------------------------------------------------

local Scope = {}
Scope.__index = Scope

local function newScope(args)
	local scope = setmetatable({ args = args or {}, portions = {}, captions = {}, canceledAfter = lr.cancelAfter },
		Scope)
	lr.scopes[#lr.scopes + 1] = scope
	return scope
end

function Scope:setPortionComplete(done, total)
	self.portions[#self.portions + 1] = { done, total }
end

function Scope:setCaption(text)
	self.captions[#self.captions + 1] = text
end

function Scope:isCanceled()
	self.checks = (self.checks or 0) + 1
	if self.canceledAfter and self.checks > self.canceledAfter then
		self.canceled = true
	end
	return self.canceled == true
end

function Scope:cancel()
	self.canceled = true
end

function Scope:done()
	self.isDone = true
end

-- Export sessions and renditions ---------------------------------------------

local Rendition = {}
Rendition.__index = Rendition

function Rendition:waitForRender()
	record { what = 'waitForRender', rendition = self }
	if self.renderError then
		return false, self.renderError
	end
	if self.render then
		self.render(self.destinationPath)
	else
		local f = assert(io.open(self.destinationPath, 'wb'))
		f:write('rendered by the stand-in')
		f:close()
	end
	return true, self.destinationPath
end

function Rendition:skipRender()
	record { what = 'skipRender', rendition = self }
	self.skipped = true
end

function Rendition:uploadFailed(message)
	record { what = 'uploadFailed', rendition = self, message = message }
end

local Session = {}
Session.__index = Session

function lr.exportSession(args)
	local session = setmetatable({ args = args, list = {} }, Session)
	local settings = args.exportSettings or {}
	local folder = settings.LR_export_destinationPathPrefix or lr.tempDir
	for i, photo in ipairs(args.photosToExport or {}) do
		local stem = (photo.meta.path or ('photo' .. i)):match('([^/\\]+)$'):gsub('%.[^.]*$', '')
		session.list[i] = setmetatable({
			photo = photo,
			destinationPath = folder .. '/' .. stem .. '.tif',
			render = lr.render,
			renderError = photo.renderError,
		}, Rendition)
	end
	lr.sessions[#lr.sessions + 1] = session
	return session
end

function Session:countRenditions()
	return #self.list
end

function Session:renditions(params)
	record { what = 'renditions', params = params }
	local i = 0
	return function()
		i = i + 1
		if self.list[i] then
			return i, self.list[i]
		end
	end
end

function Session:doExportOnCurrentTask()
	record { what = 'doExportOnCurrentTask', session = self }
end

-- An export filter's context: each photo gives (sourceRendition, renditionToSatisfy);
-- renditionIsDone calls are recorded on the second.
function lr.filterContext(photos, propertyTable)
	local session = lr.exportSession { photosToExport = photos, exportSettings = {} }
	return {
		propertyTable = propertyTable or {},
		renditions = function()
			local i = 0
			return function()
				i = i + 1
				local source = session.list[i]
				if source then
					local target = {
						photo = source.photo,
						destinationPath = source.destinationPath,
						renditionIsDone = function(self, success, message)
							self.done = { success = success, message = message }
							record { what = 'renditionIsDone', photo = self.photo, success = success, message = message }
						end,
					}
					return source, target
				end
			end
		end,
	}
end

function lr.exportContext(photos, propertyTable)
	local session = lr.exportSession { photosToExport = photos, exportSettings = {} }
	return {
		exportSession = session,
		propertyTable = propertyTable or {},
		configureProgress = function(_, args)
			return newScope(args)
		end,
	}
end

-- HTTP -----------------------------------------------------------------------

lr.http = {}

local function httpCall(method, url, body, headers, timeout)
	record { what = 'http', method = method, url = url, body = body, headers = headers, timeout = timeout }
	if not lr.http.handler then
		return nil, { error = { errorCode = 'cannotConnectToHost', name = 'Could not connect to the server.' } }
	end
	return lr.http.handler(method, url, body, headers, timeout)
end

-- LrHttp over LuaSocket, answering the way LrHttp does: (body, headers with
-- .status) or (nil, {error = {...}}) when nothing answers.
function lr.useRealHttp()
	local http = require 'socket.http'
	local ltn12 = require 'ltn12'
	lr.http.handler = function(method, url, body, headers, timeout)
		local chunks, plain = {}, {}
		for _, header in ipairs(headers or {}) do
			plain[header.field:lower()] = header.value
		end
		if method ~= 'GET' then
			plain['content-length'] = tostring(#(body or ''))
		end
		http.TIMEOUT = timeout or 30
		local ok, status, answerHeaders = http.request {
			url = url,
			method = method,
			headers = plain,
			source = method ~= 'GET' and ltn12.source.string(body or '') or nil,
			sink = ltn12.sink.table(chunks),
		}
		if not ok then
			return nil, { error = { errorCode = 'cannotConnectToHost', name = tostring(status) } }
		end
		local info = { status = status }
		for k, v in pairs(answerHeaders or {}) do
			info[#info + 1] = { field = k, value = v }
		end
		return table.concat(chunks), info
	end
end

-- Installing -------------------------------------------------------------------

local function pathUtils()
	local P = {}
	function P.child(parent, name)
		return (parent:gsub('/+$', '')) .. '/' .. name
	end
	function P.parent(path)
		return path:match('^(.*)/[^/]*$')
	end
	function P.leafName(path)
		return path:match('([^/]*)$')
	end
	function P.removeExtension(path)
		return (path:gsub('%.[^./]*$', ''))
	end
	function P.extension(path)
		return path:match('%.([^./]*)$') or ''
	end
	function P.getStandardFilePath(which)
		if which == 'temp' then
			return lr.tempDir
		end
		return os.getenv('HOME') or '/tmp'
	end
	function P.standardizePath(path)
		return path
	end
	return P
end

local function fileUtils()
	local F = {}
	function F.exists(path)
		local f = io.open(path, 'rb')
		if not f then
			return false
		end
		local _, _, code = f:read(1)
		f:close()
		return code == 21 and 'directory' or 'file'
	end
	function F.delete(path)
		record { what = 'delete', path = path }
		return os.remove(path) ~= nil
	end
	function F.move(from, to)
		record { what = 'move', from = from, to = to }
		local ok, err = os.rename(from, to)
		if not ok then
			error(err, 2)
		end
	end
	function F.createAllDirectories(path)
		record { what = 'createAllDirectories', path = path }
		return os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
	end
	return F
end

local function viewFactory()
	local factory = {}
	setmetatable(factory, {
		__index = function(_, kind)
			return function(_, args)
				return { kind = kind, args = args }
			end
		end,
	})
	return factory
end

function lr.install(options)
	options = options or {}
	lr.calls, lr.dialogs, lr.scopes, lr.sleeps, lr.sessions = {}, {}, {}, {}, {}
	lr.prefs = {}
	lr.tempDir = options.tempDir or os.getenv('TMPDIR') or '/tmp'
	lr.cancelAfter = nil
	lr.render = nil
	lr.onSleep = nil
	lr.realSleep = options.realSleep
	lr.dialogAnswer = 'ok'
	lr.http.handler = nil
	lr.catalog = setmetatable({ photos = {}, targets = {}, writeAccess = false }, Catalog)

	local modules = {
		LrApplication = { activeCatalog = function() return lr.catalog end },
		LrBinding = {
			makePropertyTable = function()
				return {}
			end,
		},
		LrDialogs = {
			message = function(title, text, style)
				lr.dialogs[#lr.dialogs + 1] = record { what = 'dialog', title = title, text = text, style = style }
			end,
			showError = function(text)
				lr.dialogs[#lr.dialogs + 1] = record { what = 'dialog', title = 'error', text = text, style = 'critical' }
			end,
			presentModalDialog = function(args)
				record { what = 'modal', args = args }
				return lr.dialogAnswer
			end,
		},
		LrExportSession = setmetatable({}, { __call = function(_, args) return lr.exportSession(args) end }),
		LrFileUtils = fileUtils(),
		LrFunctionContext = {
			callWithContext = function(_, fn, ...)
				local cleanups = {}
				local context = {
					addCleanupHandler = function(_, handler) cleanups[#cleanups + 1] = handler end,
					addFailureHandler = function() end,
				}
				local results = { pcall(fn, context, ...) }
				for _, handler in ipairs(cleanups) do
					handler()
				end
				if not results[1] then
					error(results[2], 0)
				end
				return unpack(results, 2)
			end,
		},
		LrHttp = {
			get = function(url, headers, timeout)
				return httpCall('GET', url, nil, headers, timeout)
			end,
			post = function(url, body, headers, method, timeout)
				return httpCall(method or 'POST', url, body, headers, timeout)
			end,
		},
		LrLogger = function()
			return setmetatable({}, { __index = function() return function() end end })
		end,
		LrPathUtils = pathUtils(),
		LrPrefs = { prefsForPlugin = function() return lr.prefs end },
		LrProgressScope = setmetatable({}, { __call = function(_, args) return newScope(args) end }),
		LrTasks = {
			startAsyncTask = function(fn)
				record { what = 'startAsyncTask' }
				fn()
			end,
			sleep = function(seconds)
				lr.sleeps[#lr.sleeps + 1] = seconds
				if lr.onSleep then
					lr.onSleep(#lr.sleeps)
				end
				if lr.realSleep then
					require('socket').sleep(seconds)
				end
				if #lr.sleeps > 2000 then
					error('LrTasks.sleep called 2000 times: a poll loop that never ends', 0)
				end
			end,
		},
		LrView = {
			osFactory = viewFactory,
			bind = function(key)
				return { bind = key }
			end,
			share = function(key)
				return { share = key }
			end,
		},
	}
	lr.modules = modules
	_G.import = function(name)
		local module = modules[name]
		if not module then
			error('the stand-in has no Lightroom module ' .. tostring(name), 2)
		end
		return module
	end
	_G._PLUGIN = { path = PLUGIN_DIR, id = 'org.truepix.lightroom' }
	_G.WIN_ENV, _G.MAC_ENV = false, false
	_G.LOC = function(s)
		return (s:gsub('^%$%$%$/[^=]*=', ''))
	end
	for name in pairs(package.loaded) do
		if name:match('^Truepix') or name == 'json' then
			package.loaded[name] = nil
		end
	end
	return lr
end

lr.PLUGIN_DIR = PLUGIN_DIR

return lr
