#!/usr/bin/perl
# Tools with a Mistral v3 template: [AVAILABLE_TOOLS] before the last user
# turn, forced calls returned as tool_calls (streamed or not), replies
# that are no call streamed as content, the template's checks as 400s.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model mi path={{MODEL260K}} chat_template=mistral-v3;
EOF2
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

my $tools = [ { type => 'function', function => {
    name => 'get_weather',
    parameters => { type => 'object', additionalProperties => JSON::PP::false,
                    required => [ 'city' ],
                    properties => { city => { type => 'string', enum => [ 'Paris', 'Rome' ] } } } } } ];
my $msgs = [ { role => 'system', content => 'Be brief.' },
             { role => 'user', content => 'Weather in Paris?' } ];

my $r = $t->request('POST', '/v1/apply-template', { model => 'mi', tools => $tools, messages => $msgs });
is($r->{status}, 200, 'apply-template 200');
like($r->{json}{prompt},
     qr/^\[AVAILABLE_TOOLS\] \[\{"type": "function", "function": \{.*"name": "get_weather".*\}\}\]\[\/AVAILABLE_TOOLS\]\[INST\] Be brief\.\n\nWeather in Paris\?\[\/INST\]$/s,
     'the Mistral v3 tool prompt');

for my $seed (1 .. 4) {
    my $body = { model => 'mi', tools => $tools, messages => $msgs, max_tokens => 200,
                 temperature => 1, seed => $seed,
                 tool_choice => { type => 'function', function => { name => 'get_weather' } } };
    $r = $t->request('POST', '/v1/chat/completions', $body);
    is($r->{status}, 200, "seed $seed: 200") or diag($r->{body});
    my $c = $r->{json}{choices}[0];
    is($c->{finish_reason}, 'tool_calls', "seed $seed: finish_reason tool_calls");
    my $call = $c->{message}{tool_calls}[0];
    is($call->{function}{name}, 'get_weather', "seed $seed: the named function");
    my $args = eval { JSON::PP->new->decode($call->{function}{arguments}) };
    ok(ref $args eq 'HASH' && ($args->{city} // '') =~ /^(Paris|Rome)$/,
       "seed $seed: arguments validate") or diag($call->{function}{arguments});

    my ($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$body, stream => JSON::PP::true });
    my ($name, $a) = ('', '');
    for my $e (grep { $_->{json} && @{$_->{json}{choices}} } @$ev) {
        for my $tc (@{$e->{json}{choices}[0]{delta}{tool_calls} // []}) {
            $name .= $tc->{function}{name} // '';
            $a .= $tc->{function}{arguments} // '';
        }
    }
    is($name, 'get_weather', "seed $seed: streamed name");
    is($a, $call->{function}{arguments}, "seed $seed: streamed arguments == non-streamed");
}

my $body = { model => 'mi', tools => $tools, max_tokens => 12, temperature => 0,
             messages => [ { role => 'user', content => 'Tell me a story' } ] };
$r = $t->request('POST', '/v1/chat/completions', $body);
is($r->{status}, 200, 'auto: 200');
ok(!exists $r->{json}{choices}[0]{message}{tool_calls}, 'auto, no call written: no tool_calls');
my ($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$body, stream => JSON::PP::true });
my $text = join '', map { $_->{json}{choices}[0]{delta}{content} // '' }
                    grep { $_->{json} && @{$_->{json}{choices}} } @$ev;
is($text, $r->{json}{choices}[0]{message}{content}, 'auto: streamed content == non-streamed');

$r = $t->request('POST', '/v1/chat/completions',
    { model => 'mi', tools => $tools, max_tokens => 4, messages => [
        { role => 'user', content => 'x' },
        { role => 'assistant', content => undef, tool_calls => [
            { id => 'c1', type => 'function',
              function => { name => 'get_weather', arguments => '{"city":"Rome"}' } } ] },
        { role => 'tool', tool_call_id => 'c1', content => '1' } ] });
is($r->{status}, 400, 'a call id shorter than 9: 400');
like($r->{json}{error}{message}, qr/9 characters/, '... saying why');

$t->stop;
$t->check_error_log;
done_testing();
