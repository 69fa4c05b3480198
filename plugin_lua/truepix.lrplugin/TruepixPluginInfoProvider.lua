--[[----------------------------------------------------------------------------
TruepixPluginInfoProvider.lua -- the truepix section of File > Plug-in Manager:
whether the daemon answers (and its version), the port and the token file in
use; both can be changed here.
------------------------------------------------------------------------------]]

local LrPrefs = import 'LrPrefs'
local LrTasks = import 'LrTasks'
local LrView = import 'LrView'

local TruepixDaemon = require 'TruepixDaemon'

local info = {}

-- Ask the daemon and put the answer in the dialog's property table.
function info.refresh(propertyTable)
	propertyTable.daemonStatus = 'Asking truepix...'
	LrTasks.startAsyncTask(function()
		local conn = TruepixDaemon.connection()
		propertyTable.tokenInUse = conn.tokenPath
		propertyTable.portInUse = ('127.0.0.1:%d (%s)'):format(conn.port, conn.portSource)
		local health, err = TruepixDaemon.health(conn)
		if health then
			propertyTable.daemonStatus = ('truepix %s answers (API %s, process %s).')
				:format(tostring(health.version), tostring(health.api), tostring(health.pid))
			propertyTable.daemonRunning = true
		else
			propertyTable.daemonStatus = err.message
			propertyTable.daemonRunning = false
		end
	end)
end

function info.startDialog(propertyTable)
	local prefs = LrPrefs.prefsForPlugin()
	propertyTable.port = tonumber(prefs.port) or 0
	propertyTable.tokenPath = prefs.tokenPath or ''
	propertyTable.defaultTokenPath = TruepixDaemon.defaultTokenPath()
	info.refresh(propertyTable)
end

function info.endDialog(propertyTable)
	local prefs = LrPrefs.prefsForPlugin()
	prefs.port = tonumber(propertyTable.port) or 0
	prefs.tokenPath = propertyTable.tokenPath or ''
end

function info.sectionsForTopOfDialog(f, propertyTable)
	local bind = LrView.bind
	local share = LrView.share
	local function save()
		info.endDialog(propertyTable)
		info.refresh(propertyTable)
	end
	return {
		{
			title = 'truepix daemon',
			bind_to_object = propertyTable,
			f:row {
				f:static_text { title = 'Status:', alignment = 'right', width = share 'label' },
				f:static_text { title = bind 'daemonStatus', fill_horizontal = 1, height_in_lines = 2 },
			},
			f:row {
				f:static_text { title = 'Address:', alignment = 'right', width = share 'label' },
				f:static_text { title = bind 'portInUse', fill_horizontal = 1 },
			},
			f:row {
				f:static_text { title = 'Token file:', alignment = 'right', width = share 'label' },
				f:static_text { title = bind 'tokenInUse', fill_horizontal = 1 },
			},
			f:separator { fill_horizontal = 1 },
			f:row {
				f:static_text { title = 'Port:', alignment = 'right', width = share 'label' },
				f:edit_field { value = bind 'port', width_in_digits = 6, min = 0, max = 65535, precision = 0 },
				f:static_text { title = '0 = the port the running truepix reports (default 48620)' },
			},
			f:row {
				f:static_text { title = 'Token file:', alignment = 'right', width = share 'label' },
				f:edit_field { value = bind 'tokenPath', width_in_chars = 40 },
				f:static_text { title = 'empty = the default' },
			},
			f:row {
				f:static_text { title = '', width = share 'label' },
				f:static_text { title = bind 'defaultTokenPath' },
			},
			f:row {
				f:push_button { title = 'Apply and check again', action = save },
			},
		},
	}
end

return info
