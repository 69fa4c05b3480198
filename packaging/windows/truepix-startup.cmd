@echo off
rem truepix start-up script: starts the truepix daemon (`truepix run`: hot folders, localhost API, tray icon).
rem
rem Use it one of two ways:
rem   - run install-startup.ps1, which puts a shortcut into your Startup folder (recommended), or
rem   - copy this file into your Startup folder (Win+R, shell:startup) and it runs at every login.
rem
rem Which truepix: the environment variable TRUEPIX_EXE if set (e.g. C:\venvs\truepix\Scripts\truepix.exe),
rem else the first truepix on PATH.  It starts minimised: its console window sits on the taskbar, and closing
rem that window stops the daemon (the tray's Quit is the gentle way).  Set TRUEPIX_PYTHONW to a pythonw.exe of
rem the environment truepix is installed in to run it with no console window at all (pythonw -m truepix.cli run).

setlocal
if defined TRUEPIX_PYTHONW (
    start "truepix" "%TRUEPIX_PYTHONW%" -m truepix.cli run
    exit /b 0
)
if not defined TRUEPIX_EXE (
    for /f "delims=" %%i in ('where truepix 2^>nul') do if not defined TRUEPIX_EXE set "TRUEPIX_EXE=%%i"
)
if not defined TRUEPIX_EXE (
    echo truepix: `truepix` is not on PATH; set TRUEPIX_EXE to the full path of truepix.exe 1>&2
    exit /b 1
)
start "truepix" /min "%TRUEPIX_EXE%" run
exit /b 0
