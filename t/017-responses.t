#!/usr/bin/perl
# POST /v1/responses: the object, the typed event stream and its order,
# tools held until the end, stateless errors, text.format through the
# constrained decoder.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(server => <<'EOF2')->start;
        location /v1/ { starling openai; }
        location = /resp { starling openai_responses; }
        location / { starling worker; }
EOF2

my $body = { model => 'tiny', input => 'Once upon a time', max_output_tokens => 8,
             temperature => 0 };

my $r = $t->request('POST', '/v1/responses', $body);
is($r->{status}, 200, 'responses: 200');
my $j = $r->{json};
is($j->{object}, 'response', 'object');
like($j->{id}, qr/^resp_/, 'id');
is($j->{status}, 'incomplete', 'max_output_tokens reached: incomplete');
is($j->{incomplete_details}{reason}, 'max_output_tokens', '... reason');
is($j->{output}[0]{type}, 'message', 'a message item');
is($j->{output}[0]{content}[0]{type}, 'output_text', 'output_text part');
is($j->{usage}{output_tokens}, 8, 'usage.output_tokens');
is($j->{store}, JSON::PP::false, 'store false (stateless)');
my $text = $j->{output}[0]{content}[0]{text};

my $c = $t->request('POST', '/v1/apply-template',
    { model => 'tiny', messages => [ { role => 'user', content => 'Once upon a time' } ] });
is($j->{usage}{input_tokens}, $c->{json}{n_tokens},
   'input rendered as a user turn (the chat template\'s prompt)');

my ($st, $h, $ev) = $t->stream('/v1/responses', { %$body, stream => JSON::PP::true });
is($st, 200, 'stream: 200');
my @types = map { $_->{event} } @$ev;
is_deeply([ @types[0 .. 3] ],
          [ 'response.created', 'response.in_progress', 'response.output_item.added',
            'response.content_part.added' ], 'opening events in order');
is_deeply([ @types[-4 .. -1] ],
          [ 'response.output_text.done', 'response.content_part.done',
            'response.output_item.done', 'response.incomplete' ], 'closing events in order');
ok(!grep({ $_->{json}{type} ne $_->{event} } @$ev), 'data.type == event name');
is_deeply([ map { $_->{json}{sequence_number} } @$ev ], [ 0 .. $#$ev ],
          'sequence_number counts from 0');
my $streamed = join '', map { $_->{json}{delta} }
                        grep { $_->{event} eq 'response.output_text.delta' } @$ev;
is($streamed, $text, 'streamed deltas == non-streamed text');
is($ev->[-1]{json}{response}{output}[0]{content}[0]{text}, $text, 'final response carries the text');

# with tools the text is held to the end (no call written here)
my $tools = [ { type => 'function', name => 'f', parameters => { type => 'object' } } ];
$r = $t->request('POST', '/resp', { %$body, tools => $tools });
$text = $r->{json}{output}[0]{content}[0]{text};
($st, $h, $ev) = $t->stream('/resp', { %$body, stream => JSON::PP::true, tools => $tools });
@types = map { $_->{event} } @$ev;
is($types[2], 'response.output_item.added', 'tools: the item after the lifecycle events');
my ($delta) = grep { $_->{event} eq 'response.output_text.delta' } @$ev;
is($delta->{json}{delta}, $text, 'tools: the text in one delta at the end');

$r = $t->request('POST', '/v1/responses', { %$body, previous_response_id => 'resp_x' });
is($r->{status}, 400, 'previous_response_id: 400');
is($r->{json}{error}{param}, 'previous_response_id', '... naming it');
# text.format through the constrained decoder: the output_text parses and
# validates, streamed or not, for several seeds
my $schema = {
    type => 'object', additionalProperties => JSON::PP::false,
    required => [ 'name', 'age', 'pet' ],
    properties => {
        name => { type => 'string', minLength => 1, maxLength => 8 },
        age  => { type => 'integer', minimum => 0, maximum => 120 },
        pet  => { enum => [ 'cat', 'dog' ] },
    },
};
sub valid_obj {
    my ($text) = @_;
    my $v = eval { JSON::PP->new->decode($text) };
    return 0 unless ref $v eq 'HASH';
    return 0 unless join(',', sort keys %$v) eq 'age,name,pet';
    return 0 unless !ref $v->{name} && length($v->{name}) >= 1 && length($v->{name}) <= 8;
    return 0 unless $v->{age} =~ /^\d+$/ && $v->{age} <= 120;
    return $v->{pet} =~ /^(cat|dog)$/;
}
my $fmt = { type => 'json_schema', name => 'person', strict => JSON::PP::true,
            schema => $schema };
for my $seed (1 .. 5) {
    my $req = { model => 'tiny', input => 'Who?', max_output_tokens => 300,
                temperature => 1, seed => $seed, text => { format => $fmt } };
    $r = $t->request('POST', '/v1/responses', $req);
    is($r->{status}, 200, "json_schema seed $seed: 200") or diag($r->{body} // '');
    my $out = $r->{json}{output}[0]{content}[0]{text};
    ok(valid_obj($out), "json_schema seed $seed: output_text validates") or diag($out);
    is($r->{json}{status}, 'completed', "json_schema seed $seed: completed");
    is($r->{json}{text}{format}{type}, 'json_schema', '... text.format echoed');
    is($r->{json}{text}{format}{name}, 'person', '... with its name');

    ($st, $h, $ev) = $t->stream('/v1/responses', { %$req, stream => JSON::PP::true });
    is($st, 200, "json_schema seed $seed: stream 200");
    my $s = join '', map { $_->{json}{delta} }
                     grep { $_->{event} eq 'response.output_text.delta' } @$ev;
    is($s, $out, "json_schema seed $seed: streamed == non-streamed");
    is($ev->[-1]{event}, 'response.completed', '... completed');
}
# json_object: any object; a story model's strings run long, so an output
# cut by max_output_tokens must at least open the object
for my $seed (1 .. 3) {
    $r = $t->request('POST', '/v1/responses',
        { model => 'tiny', input => 'Data:', max_output_tokens => 300, seed => $seed,
          temperature => 1, text => { format => { type => 'json_object' } } });
    is($r->{status}, 200, "json_object seed $seed: 200");
    my $out = $r->{json}{output}[0]{content}[0]{text};
    if ($r->{json}{status} eq 'completed') {
        my $obj = eval { JSON::PP->new->decode($out) };
        is(ref $obj, 'HASH', "json_object seed $seed: output_text is a JSON object")
            or diag($out);
    } else {
        like($out, qr/^\s?\{/, "json_object seed $seed: cut by max_output_tokens, "
             . "starts an object");
    }
    is($r->{json}{text}{format}{type}, 'json_object', '... echoed');
}
$r = $t->request('POST', '/v1/responses', { %$body, text => { format => { type => 'text' } } });
is($r->{status}, 200, 'text.format text: 200');
is($r->{json}{text}{format}{type}, 'text', '... echoed');

$r = $t->request('POST', '/v1/responses', { %$body, text => { format => { type => 'json_schema' } } });
is($r->{status}, 400, 'text.format json_schema without schema: 400');
is($r->{json}{error}{param}, 'text.format.schema', '... naming text.format.schema');
$r = $t->request('POST', '/v1/responses', { %$body, text => { format => { type => 'xml' } } });
is($r->{status}, 400, 'text.format type xml: 400');
is($r->{json}{error}{param}, 'text.format.type', '... naming text.format.type');
$r = $t->request('POST', '/v1/responses', { %$body, text => { format =>
    { type => 'json_schema', name => 'x', schema => { type => 'string', format => 'uri' } } } });
is($r->{status}, 400, 'unsupported schema keyword: 400');
like($r->{json}{error}{message}, qr/format/, '... saying which keyword');
$r = $t->request('POST', '/v1/responses', { model => 'tiny' });
is($r->{status}, 400, 'no input: 400');

$t->stop;
$t->check_error_log;
done_testing();
