<#
.SYNOPSIS
    Starts truepix (`truepix run`) at every login: puts a shortcut, truepix.lnk, into your Startup folder.

.DESCRIPTION
    The shortcut runs truepix.exe with the argument "run", minimised (its console window sits on the taskbar;
    closing it stops the daemon, the tray icon's Quit is the gentle way).  With -NoConsole it runs
    "pythonw.exe -m truepix.cli run" from the same Python environment instead: no console window at all (the
    daemon's messages then go only to its log file).  Run it again to update the shortcut, with -Uninstall to
    remove it.  truepix-startup.cmd, beside this script, does the same from a batch file.

.PARAMETER Truepix
    Full path of truepix.exe, e.g. C:\venvs\truepix\Scripts\truepix.exe.  Default: the truepix on PATH.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File packaging\windows\install-startup.ps1
.EXAMPLE
    powershell -ExecutionPolicy Bypass -File packaging\windows\install-startup.ps1 -Truepix C:\venvs\truepix\Scripts\truepix.exe -NoConsole
#>
[CmdletBinding()]
param(
    [string]$Truepix,
    [switch]$NoConsole,
    [switch]$Uninstall
)
$ErrorActionPreference = 'Stop'

$startup = [Environment]::GetFolderPath('Startup')
$link = Join-Path $startup 'truepix.lnk'

if ($Uninstall) {
    if (Test-Path $link) {
        Remove-Item $link
        Write-Host "Removed $link"
    } else {
        Write-Host "There is no $link"
    }
    return
}

if (-not $Truepix) {
    $found = Get-Command truepix -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $found) {
        throw 'truepix is not on PATH; pass its full path: -Truepix C:\path\to\Scripts\truepix.exe'
    }
    $Truepix = $found.Path
}
$Truepix = (Resolve-Path $Truepix).Path
$bin = Split-Path -Parent $Truepix

$shell = New-Object -ComObject WScript.Shell
$shortcut = $shell.CreateShortcut($link)
if ($NoConsole) {
    # A venv has pythonw.exe beside truepix.exe (Scripts\); a system Python one folder up.
    $pythonw = @((Join-Path $bin 'pythonw.exe'), (Join-Path (Split-Path -Parent $bin) 'pythonw.exe')) |
        Where-Object { Test-Path $_ } | Select-Object -First 1
    if (-not $pythonw) {
        throw "There is no pythonw.exe beside $Truepix; run without -NoConsole"
    }
    $shortcut.TargetPath = $pythonw
    $shortcut.Arguments = '-m truepix.cli run'
} else {
    $shortcut.TargetPath = $Truepix
    $shortcut.Arguments = 'run'
    $shortcut.WindowStyle = 7  # minimised
}
$shortcut.WorkingDirectory = $env:USERPROFILE
$shortcut.Description = 'truepix photo-enhancement daemon (truepix run)'
$shortcut.Save()

Write-Host "Created $link -> $($shortcut.TargetPath) $($shortcut.Arguments)"
Write-Host "truepix starts at your next login; to start it now: Start-Process '$link'"
