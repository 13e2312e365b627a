#!/usr/bin/perl
# bench-server.pl: Starling (nginx + the module) and llama.cpp's
# llama-server on the same model file, threads and slots, driven by the
# same starling-loadbench command (streamed /v1/completions, the same
# prompt, temperature 0, ignore_eos, N concurrent streams), side by side.
#
#   tools/bench-server.pl --llamacpp-bin DIR --file MODEL.gguf [options]
#
# (make bench-server passes LLAMACPP_BIN, NGINX_BIN, STARLING_MODULE.)
#
# Only one server runs at a time (they would share the same cores):
# each round starts Starling, runs every concurrency level, stops it, then
# does the same with llama-server; with several rounds the table gives
# the median. Both get the same parallelism: Starling max_seqs=SLOTS
# ctx=CTX (per sequence), llama-server -np SLOTS -c SLOTS*CTX (shared by
# the slots). Both keep their defaults otherwise (both reuse a cached
# prompt prefix, so TTFT after the first wave includes that).
#
# Exit status: 0 done, 1 a server or a load run failed (the message says
# which and shows the end of its log), 2 usage or setup error.

use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use IO::Socket::INET ();
use JSON::PP ();
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $me = 'bench-server';
my %o = (
    'llamacpp-bin' => $ENV{LLAMACPP_BIN} // '',
    nginx          => $ENV{NGINX_BIN} || '/usr/sbin/nginx',
    module         => $ENV{STARLING_MODULE}
                      || 'build/nginx/ngx_http_starling_module.so',
    loadbench      => 'build/starling-loadbench',
    file           => '',
    threads        => 2,
    slots          => 8,
    ctx            => 1024,
    conc           => '1,4,8',
    tokens         => 128,
    waves          => 3,
    rounds         => 1,
    quick          => 0,
    'start-timeout' => 300,
    prompt         => 'You are a careful assistant. Summarise the following '
                    . 'story in two sentences, then list its three main '
                    . 'characters and say what each of them wants. Once upon '
                    . 'a time, in a small village by the sea, there lived an '
                    . 'old fisherman, his granddaughter and a clever cat.',
);
GetOptions(\%o, 'llamacpp-bin=s', 'nginx=s', 'module=s', 'loadbench=s',
           'file=s', 'threads=i', 'slots=i', 'ctx=i', 'conc=s', 'tokens=i',
           'waves=i', 'rounds=i', 'quick!', 'prompt=s', 'start-timeout=i',
           'help') or usage(2);
usage(0) if $o{help};

sub usage {
    my ($rc) = @_;
    my $fh = $rc ? \*STDERR : \*STDOUT;
    print $fh <<"EOF";
usage: $0 --llamacpp-bin DIR --file MODEL.gguf [options]
  --llamacpp-bin DIR  llama.cpp's bin folder (holds llama-server); env LLAMACPP_BIN
  --file F            the GGUF both servers load
  --threads N         compute threads of each server (default 2)
  --slots N           Starling max_seqs / llama-server -np (default 8)
  --ctx N             context per sequence (default 1024)
  --conc LIST         concurrent streams (default 1,4,8)
  --tokens N          tokens generated per stream (default 128)
  --waves N           waves per level (default 3), --rounds N (default 1)
  --quick             one wave per level, 64 tokens
  --nginx BIN, --module SO, --loadbench BIN   (env NGINX_BIN, STARLING_MODULE)
EOF
    exit $rc;
}

sub fail_setup { print STDERR "$me: $_[0]\n"; exit 2; }

my $ls = "$o{'llamacpp-bin'}/llama-server";
$o{'llamacpp-bin'} ne ''
    or fail_setup("no llama.cpp build given. This comparison starts "
                . "llama.cpp's llama-server as measuring equipment; build "
                . "llama.cpp (CPU backend, e.g. tag b10573) and pass its bin "
                . "folder: make bench-server LLAMACPP_BIN=/path/to/bin");
-x $ls or fail_setup("$ls: not found or not executable (LLAMACPP_BIN must be "
                   . "the folder holding llama-server)");
-x $o{nginx} or fail_setup("$o{nginx}: nginx not found (NGINX_BIN=)");
-f $o{module} or fail_setup("$o{module}: the module is not built (make "
                          . "module, or STARLING_MODULE=)");
-x $o{loadbench} or fail_setup("$o{loadbench}: not built (make -j2 "
                             . "build/starling-loadbench)");
$o{file} ne '' or fail_setup("no model file given (--file or SERVER_FILE=)");
-f $o{file} && -r $o{file}
    or fail_setup("$o{file}: model file not found or not readable");
for my $k (qw(threads slots ctx tokens waves rounds)) {
    $o{$k} >= 1 or fail_setup("--$k must be at least 1");
}
my @conc = split /,/, $o{conc};
for my $c (@conc) {
    $c =~ /^[1-9][0-9]*$/ && $c <= $o{slots} * 32
        or fail_setup("bad concurrency \"$c\"");
}
$o{prompt} =~ /["\\\x00-\x1f]/
    and fail_setup("--prompt must not hold quotes, backslashes or controls "
                 . "(starling-loadbench puts it into the JSON as it is)");
if ($o{quick}) {
    $o{waves} = 1;
    $o{rounds} = 1;
    $o{tokens} = 64;
}
my $file = $o{file} =~ m{^/} ? $o{file} : "$ENV{PWD}/$o{file}";
my $module = $o{module} =~ m{^/} ? $o{module} : "$ENV{PWD}/$o{module}";

my $tmp = tempdir("$me-XXXXXX", TMPDIR => 1, CLEANUP => 1);
my (%res, @failed, $child);
$SIG{INT} = $SIG{TERM} = sub { stop_child(); exit 130; };

my $load0 = loadavg();
for my $round (1 .. $o{rounds}) {
    for my $srv ('starling', 'llama') {
        my $port = free_port();
        my ($pid, $log, $ready) = $srv eq 'starling'
            ? start_starling($port) : start_llama($port);
        $child = $pid;
        if (!wait_ready($pid, $port, $ready, $log)) {
            push @failed, "$srv did not become ready on port $port";
            print STDERR "$me: $failed[-1]; end of $log:\n", tail($log);
            stop_child();
            next;
        }
        load($srv, $port, $log);
        stop_child();
    }
}
my $load1 = loadavg();

printf "# %s, %d threads, %d slots, ctx %d per sequence; %d tokens per "
     . "stream (ignore_eos, temperature 0), %d wave(s) x %d round(s)\n",
    base($o{file}), $o{threads}, $o{slots}, $o{ctx}, $o{tokens}, $o{waves},
    $o{rounds};
printf "# load average %.2f at start, %.2f at end%s\n", $load0, $load1,
    ($load0 > ncores() || $load1 > ncores())
        ? '  ** machine busy: figures under contention **' : '';
print "| streams | tok/s Starling | tok/s llama-server | ratio "
    . "| mean TTFT ms Starling | mean TTFT ms llama-server | ratio "
    . "| errors S/L |\n";
print "|---:|---:|---:|---:|---:|---:|---:|---|\n";
for my $c (@conc) {
    my %m;
    for my $srv ('starling', 'llama') {
        for my $k ('tokens_per_s', 'ttft_ms_mean', 'errors') {
            $m{$srv}{$k} = median([map { $_->{$k} }
                                   @{ $res{$srv}{$c} // [] }]);
        }
    }
    printf "| %d | %s | %s | %s | %s | %s | %s | %s/%s |\n", $c,
        fmt($m{starling}{tokens_per_s}), fmt($m{llama}{tokens_per_s}),
        ratio($m{starling}{tokens_per_s}, $m{llama}{tokens_per_s}),
        fmt($m{starling}{ttft_ms_mean}), fmt($m{llama}{ttft_ms_mean}),
        ratio($m{starling}{ttft_ms_mean}, $m{llama}{ttft_ms_mean}),
        $m{starling}{errors} // '-', $m{llama}{errors} // '-';
}
print "# ratio = Starling / llama-server (tok/s: higher is better; "
    . "TTFT: lower is better)\n";
if (@failed) {
    printf STDERR "$me: %d failure(s): %s\n", scalar @failed,
        join('; ', @failed);
    exit 1;
}
exit 0;

sub base { my ($p) = @_; $p =~ s{.*/}{}; return $p; }
sub ncores { my $n = () = `cat /proc/cpuinfo` =~ /^processor/mg; $n || 1 }
sub fmt { defined $_[0] ? sprintf('%.1f', $_[0]) : 'failed' }
sub ratio { defined $_[0] && $_[1] ? sprintf('%.2f', $_[0] / $_[1]) : '-' }

sub median {
    my ($v) = @_;
    my @s = sort { $a <=> $b } grep { defined } @$v;
    return undef unless @s;
    my $n = @s;
    return $n % 2 ? $s[$n / 2] : ($s[$n / 2 - 1] + $s[$n / 2]) / 2;
}

sub loadavg {
    open my $fh, '<', '/proc/loadavg' or return 0;
    my ($l) = split ' ', scalar <$fh>;
    return $l;
}

sub tail {
    my ($f) = @_;
    open my $fh, '<', $f or return "  (no log)\n";
    my @l = <$fh>;
    return join '', map { "  $_" } @l > 15 ? @l[-15 .. -1] : @l;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or fail_setup("cannot bind a loopback port: $!");
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork() // fail_setup("fork: $!");
    if ($pid == 0) {
        open STDOUT, '>', $log or exit 127;
        open STDERR, '>&', \*STDOUT or exit 127;
        exec @cmd or exit 127;
    }
    return $pid;
}

sub start_starling {
    my ($port) = @_;
    my $p = "$tmp/nginx-$port";
    mkdir $p;
    mkdir "$p/logs";
    open my $fh, '>', "$p/nginx.conf" or fail_setup("$p/nginx.conf: $!");
    print $fh <<"EOF";
error_log $p/logs/error.log info;
load_module $module;
worker_processes 1;
daemon off;
pid $p/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $p/body;
    proxy_temp_path $p/proxy;
    fastcgi_temp_path $p/fastcgi;
    uwsgi_temp_path $p/uwsgi;
    scgi_temp_path $p/scgi;
    starling_model bench path=$file threads=$o{threads} max_seqs=$o{slots} ctx=$o{ctx};
    starling_max_tokens $o{tokens};
    starling_queue 256 timeout=600s;
    server {
        listen 127.0.0.1:$port;
        location /v1/ { starling openai; }
        location / { starling worker; }
    }
}
EOF
    close $fh;
    my $log = "$p/logs/error.log";
    # -e: what nginx says before it reads error_log goes there too
    my $pid = spawn("$p/stderr.log", $o{nginx}, '-p', $p, '-e', $log, '-c',
                    "$p/nginx.conf");
    return ($pid, $log, '/ready');
}

sub start_llama {
    my ($port) = @_;
    my $log = "$tmp/llama-server-$port.log";
    my $pid = spawn($log, $ls, '-m', $file, '-t', $o{threads}, '-tb',
                    $o{threads}, '-np', $o{slots}, '-c', $o{slots} * $o{ctx},
                    '--host', '127.0.0.1', '--port', $port);
    return ($pid, $log, '/health');
}

# HTTP GET on loopback; returns the status code (0 when nothing answers).
sub http_status {
    my ($port, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 2) or return 0;
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
           . "\r\n\r\n";
    my $line = <$s> // '';
    close $s;
    return $line =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0;
}

# Until the server answers 200 on its readiness path; 0 when it exits, a
# model fails to load (Starling's nginx stays up, so its log tells), or
# --start-timeout passes.
sub wait_ready {
    my ($pid, $port, $path, $log) = @_;
    my $end = time() + $o{'start-timeout'};
    while (time() < $end) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $child = undef;                    # reaped: nothing to stop
            return 0;
        }
        if (open my $fh, '<', $log) {
            local $/;
            my $text = <$fh> // '';
            return 0 if $text =~ /failed to load|\[emerg\]|\[alert\]/;
        }
        return 1 if http_status($port, $path) == 200;
        sleep(0.25);
    }
    return 0;
}

sub stop_child {
    return unless $child;
    kill 'TERM', $child;
    my $gone = 0;
    for (1 .. 120) {
        my $r = waitpid($child, WNOHANG);
        $gone = 1, last if $r == $child || $r == -1;    # -1: reaped already
        sleep(0.25);
    }
    if (!$gone) {
        kill 'KILL', $child;
        waitpid($child, 0);
    }
    $child = undef;
}

sub load {
    my ($srv, $port, $log) = @_;
    my @cmd = ($o{loadbench}, '-p', $port, '--model', 'bench', '--prompt',
               $o{prompt}, '-c', join(',', @conc), '-n', $o{tokens}, '-w',
               $o{waves}, '--temp', 0, '--ignore-eos', '--json');
    open my $fh, '-|', @cmd or do {
        push @failed, "$srv: cannot run $o{loadbench}: $!";
        return;
    };
    my $n = 0;
    while (my $line = <$fh>) {
        next unless $line =~ /^\{/;
        my $j = eval { JSON::PP::decode_json($line) } or next;
        # a level whose every stream failed has no rate and no TTFT
        @$j{qw(tokens_per_s ttft_ms_mean)} = (undef, undef)
            unless $j->{tokens};
        push @{ $res{$srv}{ $j->{concurrency} } }, $j;
        $n++;
        if ($j->{errors}) {
            push @failed, "$srv: $j->{errors} failed stream(s) at "
                        . "$j->{concurrency} streams";
        }
    }
    close $fh;
    my $rc = $? >> 8;
    if ($rc != 0 || $n != @conc) {
        push @failed, "$srv: starling-loadbench exit status $rc, $n of "
                    . scalar(@conc) . ' levels measured';
        print STDERR "$me: $failed[-1]; end of $log:\n", tail($log);
    }
}
